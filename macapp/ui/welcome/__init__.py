"""The first-run welcome card."""
