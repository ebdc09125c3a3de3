"""Storage behind one interface (`base.Store`); SQLite in WAL mode is the default."""
from .base import Store, StoreError


def open_store(config):
    """Open the configured backend. Only 'sqlite' ships; see base.Store for what
    another backend (PostgreSQL for several gateway instances) must provide."""
    backend = config.get("backend", "sqlite")
    if backend == "sqlite":
        from .sqlite import SqliteStore
        return SqliteStore(config["path"], synchronous=config.get("synchronous", "full"))
    raise StoreError("unknown store backend %r (available: sqlite)" % backend)


__all__ = ["Store", "StoreError", "open_store"]
