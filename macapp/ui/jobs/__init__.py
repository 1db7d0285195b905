"""Worker jobs shared by pages: plain functions over core that run off the GUI thread."""
