"""The runner really is MicroPython, with the board's file layout."""
import pytest

from vistelse_tools.micropython import MicroPythonError


def test_runs_real_micropython_with_board_layout(micropython):
    out = micropython(
        "import sys, gc, time\n"
        "import vistelse_mcodec\n"
        "print(sys.implementation.name)\n"
        "print(vistelse_mcodec.__file__)\n"
        "print(time.ticks_diff(time.ticks_add(0, -1), 0))\n"
        "print(gc.mem_alloc() > 0)\n")
    name, path, diff, alloc = out.split()
    assert name == "micropython"
    assert path == "/flash/lib/vistelse_mcodec.py"
    assert diff == "-1"           # ticks arithmetic wraps as on a microcontroller
    assert alloc == "True"


def test_exceptions_carry_the_micropython_traceback(micropython):
    with pytest.raises(MicroPythonError) as info:
        micropython("print('before')\nraise ValueError('boom')\n")
    assert "ValueError: boom" in info.value.traceback
    assert info.value.stdout.strip() == "before"
