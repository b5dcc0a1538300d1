"""The `neurodepot` command line: one module per verb group, wired in `app.py`."""
