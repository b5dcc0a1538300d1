"""The pipeline registry and the Dask runner."""
