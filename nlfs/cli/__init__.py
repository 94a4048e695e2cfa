"""The `nlfs` command line: argument parsing and dispatch only (see `main.py`)."""
