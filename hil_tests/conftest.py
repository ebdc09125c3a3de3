"""Hardware-in-the-loop: the same tests against a real board or the virtual one.

    pytest hil_tests --port /dev/ttyUSB0 --board esp32_devkitc    # a real board (and modem tap, see docs/hil.md)
    pytest hil_tests --virtual                                    # MicroPython WebAssembly behind a pty (default)

Every test talks to the board only through mpremote, exactly as it would to
hardware.
"""
import os
import subprocess
import sys

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("vistelse hardware-in-the-loop")
    group.addoption("--port", default=None, help="serial port of a real board")
    group.addoption("--virtual", action="store_true", help="use the virtual board (the default without --port)")
    group.addoption("--board", default="esp32_devkitc", help="board definition in firmware/boards/")


class Board:
    """A board reached through mpremote."""

    def __init__(self, port, name, virtual=None):
        self.port = port
        self.name = name
        self.virtual = virtual

    def mpremote(self, *args, timeout=120, check=True):
        exe = os.path.join(os.path.dirname(sys.executable), "mpremote")
        proc = subprocess.run([exe, "connect", self.port] + list(args), capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError("mpremote %s failed: %s%s" % (" ".join(args[:2]), proc.stdout[-2000:],
                                                              proc.stderr[-2000:]))
        return proc.stdout

    def run(self, code, timeout=120):
        """Execute code on the board; its printed output."""
        return self.mpremote("exec", code, timeout=timeout)


@pytest.fixture(scope="session")
def board(request):
    port = request.config.getoption("--port")
    name = request.config.getoption("--board")
    if port:
        yield Board(port, name)
        return
    from vistelse_tools.virtual_board import VirtualBoard
    with VirtualBoard() as vb:
        yield Board(vb.port, name, virtual=vb)


@pytest.fixture(scope="session")
def deployed(board):
    """The firmware, deployed with `vistelse deploy` and verified by hash."""
    from vistelse_tools import deploy
    assert deploy.main(["--port", board.port, "--board", board.name, "--no-deps"]) == 0
    return board
