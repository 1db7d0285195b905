"""Widgets shared by pages (no page imports another page)."""
