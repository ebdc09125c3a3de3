"""The whole node at board size, for a simulated day, under real MicroPython.

The firmware compiled to .mpy as `vistelse deploy` installs it, the
pipeline, the persistent queue with its worst-case backlog after a 12-hour
outage, the modem driver and the codec: tools/vistelse_tools/board_memory.py.
The runtime's heap is sized so that the node starts with exactly the free
heap of the board (FREE_HEAP in its board file; on a board whose node runs
from a frozen image, FROZEN_REQUIRED, plus the heap the loaded modules take
here) and the day fails if the heap ever has to grow: this runtime adds a
heap area where a board would raise MemoryError, and collects only between
turns, so the day is harder than on the board. One run per sensor, on the
board that gives the node the least heap (board_memory.tightest_board says
why that run stands for every board that lists the sensor);
docs/firmware.md has the figures (board table)."""
import os

import pytest

from vistelse_tools import board_memory, deploy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("sensor", ["ld2450", "vl53l5cx"])
def test_a_day_of_the_node_fits_every_board_that_supports_the_sensor(sensor):
    modules = board_memory.module_ram("esp32_devkitc")
    board, heap = board_memory.tightest_board(sensor, modules)
    boards = [b for b in sorted(deploy.BOARDS) if sensor in deploy.board_facts(b)["SENSORS"]]
    assert board in boards and all(board_memory.node_heap(b, modules) >= heap for b in boards)
    fig = board_memory.measure(sensor, board, hours=24, outage_h=12, free_heap=heap)
    print("\n%s: %s" % (sensor, fig))
    print("modules loaded from .mpy: %d bytes of heap" % modules)
    # the node started with the board's free heap, and the heap never had to grow
    assert heap <= fig["heap_given"] < heap + 64
    assert fig["grew"] is None, "the node needed more heap than %s has: %s" % (board, fig)
    assert 0 < modules < fig["live_peak"] < fig["peak_alloc"] <= fig["heap_given"]
    assert 0 < fig["largest_free_at_live_peak"] <= fig["heap_given"] - fig["live_peak"]
    # the day happened: every interval closed, the backlog reached the queue's bound, all that
    # was released went out; what is held is the evening's tail of fewer than k people
    assert fig["intervals"] >= 287 and fig["max_queue_records"] == 48
    assert fig["released"] >= 200 and (fig["held"] == 0 or fig["held_people"] < fig["k"])
    # everything released went out; receipts (every 4 hours once the network is back, each delivered
    # after one of the node's uplinks, as class A) freed what was sent, none dropped unreceipted
    assert fig["queue_left"] <= 1 and fig["receipts"] >= 2 and fig["dropped"] == 0
    assert deploy.NODE_HEAP_BYTES[sensor] >= fig["live_peak"]     # what deploy asks of a board


def test_a_heap_too_small_for_the_node_is_caught():
    """The check is not blind: given less heap than the loaded node holds,
    the runtime adds a heap area (where a board raises MemoryError) and
    the day stops at its first turn with "grew"."""
    fig = board_memory.measure("ld2450", "esp32_devkitc", hours=0.01, outage_h=0, free_heap=48 * 1024)
    assert fig["grew"] is not None and fig["grew"][0] == 0 and fig["turns"] == 1, fig
    assert fig["heap_given"] < 48 * 1024 + 64 < fig["after_start"]


def test_boards_that_cannot_hold_a_node_say_so():
    """The ToF node needs PSRAM on an ESP32; the F446 holds no node at all."""
    assert "vl53l5cx" not in deploy.board_facts("esp32_devkitc")["SENSORS"]
    assert deploy.board_facts("nucleo_f446re")["SENSORS"] == ()


def test_the_manifest_freezes_what_deploy_compiles():
    """firmware/manifest.py (micropython-lib's convention) names every module
    `vistelse deploy` compiles, so a frozen image and a deployed board run
    the same code."""
    frozen = []
    scope = {"metadata": lambda **kw: None, "include": lambda *a, **kw: None,
             "package": lambda name, base_path=".": frozen.extend(
                 os.path.relpath(os.path.join(d, f), os.path.join(ROOT, "firmware", base_path)).replace(os.sep, "/")
                 for d, _, fs in os.walk(os.path.join(ROOT, "firmware", base_path, name)) for f in fs
                 if f.endswith(".py")),
             "module": lambda name, base_path=".": frozen.append(name)}
    exec(open(os.path.join(ROOT, "firmware", "manifest.py")).read(), scope)
    compiled = {t[:-4] + ".py" for _, t, c in deploy.plan("esp32_devkitc") if c}
    compiled = {t[4:] if t.startswith("lib/") else t for t in compiled}
    assert compiled == set(frozen)
