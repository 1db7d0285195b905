"""Orchard's desktop window (PySide6). Thin: views call ``macapp.core`` through one Worker type."""
