"""The operator surface: one small Starlette app on uvicorn (no CDN, no JavaScript)."""
from .app import WebApp

__all__ = ["WebApp"]
