"""The pipeline registry and the Dask runner (to come)."""
