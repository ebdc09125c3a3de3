"""The operator surface: one small HTTP app (stdlib http.server, no CDN, no JavaScript)."""
from .app import WebApp

__all__ = ["WebApp"]
