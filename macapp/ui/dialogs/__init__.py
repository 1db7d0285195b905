"""Dialogs every page may open."""
