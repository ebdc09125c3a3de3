"""Shared test setup: firmware and node codec importable under CPython too."""
import os
import sys

import pytest

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
