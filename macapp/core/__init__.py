"""Orchard's core: everything but the GUI and CLI. Never imports Qt (import-linter checks)."""
