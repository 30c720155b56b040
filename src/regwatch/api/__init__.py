"""The HTTP API: Clouddriver-compatible lookups plus health, metrics and status (FastAPI)."""

from regwatch.api.app import create_app

__all__ = ["create_app"]
