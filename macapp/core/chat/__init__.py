"""Chat: the history store (and later sessions and chat templates)."""
