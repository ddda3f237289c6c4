"""The JSON API: FastAPI routers, request/response schemas and auth dependencies.

The routers are assembled by ``splitlab.app``; importing one module of this package (the CLI
reads ``api.ingest``'s experiment summaries) does not import the others.
"""
