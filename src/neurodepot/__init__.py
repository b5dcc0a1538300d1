"""neurodepot: a self-hosted open-data archive for brain-imaging research centres."""

__version__ = "0.1.0"
