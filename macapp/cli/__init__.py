"""``macapp`` command line: thin adapters over macapp.core (argparse; rich for tables)."""
