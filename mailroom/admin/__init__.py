"""Administration: the command-line interface."""
