"""The HTTP API (FastAPI): REST resources, the live feed and the supervisor's map page."""
