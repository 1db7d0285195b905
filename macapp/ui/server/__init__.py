"""The server panel."""
