"""The Discover page: search the Hub, pick a file, download."""
