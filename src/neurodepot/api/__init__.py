"""The HTTP edge: FastAPI app, the native `/api/v1` routers, and later XNAT's `/data`."""
