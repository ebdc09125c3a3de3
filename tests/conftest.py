"""Shared test setup: firmware and node codec importable under CPython too."""
import os
import sys

import pytest
from hypothesis import settings

# Property tests: `make test` (and CI) runs each with a fixed seed, so a run
# is reproducible and a failure is the same on every machine. To search for
# new counter-examples, run them with fresh random seeds:
#     HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest tests/test_presence.py
# and pin what it finds with @example (or record it as a known limit).
settings.register_profile("fixed", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "codecs", "micropython")):
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture(scope="session")
def micropython():
    """run_micropython(script) -> stdout, under the official WebAssembly build."""
    from vistelse_tools.micropython import check_runtime, run_micropython
    check_runtime()  # fails (not skips) with what to install
    return run_micropython


# -- gateway stores: every store test runs on SQLite and on a real PostgreSQL ------------
@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL cluster per test session (each test gets its own database)."""
    from vistelse_gateway.testing import Postgres, postgres_bindir
    if postgres_bindir() is None:
        if os.environ.get("CI") or os.geteuid() == 0:
            pytest.fail("PostgreSQL is not installed: run tools/setup.sh (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed and this is not root")
    pg = Postgres(fsync=False).start()      # throwaway data: durability is the benchmarks' business
    yield pg
    pg.stop()


class StoreMaker:
    """Opens stores of one backend on one fresh database; closes them all at the end."""

    def __init__(self, backend, tmp_path, request):
        self.backend = backend
        self.opened = []
        if backend == "postgres":
            self.config = {"url": request.getfixturevalue("postgres_server").create_database()}
        else:
            self.config = {"path": str(tmp_path / "gw.sqlite")}

    def open(self):
        from vistelse_gateway.store import open_store
        store = open_store(self.config, migrate=True)
        self.opened.append(store)
        return store

    def sql(self, statement):
        """Run SQL behind the store's back (to tamper with it, as an attacker with file access would)."""
        if self.backend == "postgres":
            import psycopg
            with psycopg.connect(self.config["url"], autocommit=True) as conn:
                conn.execute(statement)
        else:
            import sqlite3
            db = sqlite3.connect(self.config["path"])
            db.execute(statement)
            db.commit()
            db.close()

    def close(self):
        for store in self.opened:
            store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request, tmp_path):
    maker = StoreMaker(request.param, tmp_path, request)
    yield maker
    maker.close()
