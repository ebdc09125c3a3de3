"""Run firmware code under real MicroPython (the official WebAssembly build).

    from vistelse_tools.micropython import run_micropython
    print(run_micropython("import vistelse_mcodec; print('ok')"))

The firmware (`firmware/`) and the node's codec (`codecs/micropython/`) are
copied into MicroPython's own filesystem the way `vistelse deploy` lays them
out on a board (/flash and /flash/lib), so imports behave as on the device.
The WebAssembly build grows its heap on demand and uses double-precision
floats where microcontrollers use single; measure memory with
gc.mem_alloc(). `time.ticks_ms` wraps at 2^30 as on a microcontroller.
"""
import json
import os
import shutil
import subprocess

from . import REPO_ROOT

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "micropython_run.mjs")
PACKAGE = os.path.join(REPO_ROOT, "node_modules", "@micropython", "micropython-webassembly-pyscript")
BOARD_FILES = (
    (os.path.join(REPO_ROOT, "firmware"), "/flash"),
    (os.path.join(REPO_ROOT, "codecs", "micropython"), "/flash/lib"),
)


class MicroPythonError(AssertionError):
    """The script raised under MicroPython; the message holds its traceback."""

    def __init__(self, traceback, stdout=""):
        AssertionError.__init__(self, traceback)
        self.traceback = traceback
        self.stdout = stdout


def check_runtime():
    """Raise RuntimeError, saying what to do, when node or the npm package is missing."""
    if shutil.which("node") is None:
        raise RuntimeError("node is not installed (Debian package 'nodejs'; `make setup` installs it as root)")
    if not os.path.isdir(PACKAGE):
        raise RuntimeError("MicroPython WebAssembly is not installed; run `make setup` (npm ci)")


def run_micropython(script, *, files=BOARD_FILES, heapsize=1024 * 1024, timeout=300, step=None, repeat=1):
    """Run `script` under MicroPython; return what it printed.

    `script` may be a list of scripts, each then a top-level call: garbage
    is collected between them when asked for (gc.collect() in this port
    only asks: ports/webassembly/main.c collects at the top level).
    With `step`, that code then runs up to `repeat` times, each call a
    top-level one (garbage is collected between them), until it sets the
    global `_done`. The heap starts at `heapsize` and grows on demand (the
    npm build's MICROPY_GC_SPLIT_HEAP_AUTO); growth shows as
    gc.mem_alloc() + gc.mem_free() rising above heapsize.

    Raises MicroPythonError with the MicroPython traceback if it raised.
    """
    check_runtime()
    request = {"script": script, "files": [list(f) for f in files], "heapsize": heapsize}
    if step:
        request.update(step=step, repeat=repeat)
    proc = subprocess.run(["node", RUNNER], input=json.dumps(request), capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise MicroPythonError(proc.stderr.strip() or "node exited with %d" % proc.returncode, proc.stdout)
    return proc.stdout
