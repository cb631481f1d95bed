"""The example FastAPI service (``app``) and its reference dashboard (``dashboard``)."""
