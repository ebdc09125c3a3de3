"""Storage behind one interface (`base.Store`): SQLite in WAL mode is the embedded
default; PostgreSQL (`url = "postgresql://..."`) lets several gateway instances share
one database."""
from .base import Store, StoreError


def open_store(config, migrate=None, instance=None):
    """Open the configured backend. SQLite brings its schema up to date itself; a
    PostgreSQL database is migrated only by `vistelse gateway migrate` (migrate=True),
    so that an upgrade is one deliberate step for all instances."""
    url = config.get("url") or ""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore
        return PostgresStore(url, migrate=bool(migrate), instance=instance)
    if url:
        raise StoreError("store url %r: only postgresql://... is supported (or leave it out for SQLite)" % url)
    backend = config.get("backend", "sqlite")
    if backend == "sqlite":
        from .sqlite import SqliteStore
        return SqliteStore(config["path"], synchronous=config.get("synchronous", "full"))
    raise StoreError("unknown store backend %r (available: sqlite, or url = \"postgresql://...\")" % backend)


__all__ = ["Store", "StoreError", "open_store"]
