"""The node's RAM at board size: a simulated day under real MicroPython.

    python -m vistelse_tools.board_memory --sensor ld2450 --board esp32_devkitc
    python -m vistelse_tools.board_memory --sensor vl53l5cx --board weact_h743 --hours 24

Runs the whole node as a board runs it: the firmware and the node codec
compiled with mpy-cross exactly as `vistelse deploy` installs them (the
board's -march, its file layout), imported from .mpy under the official
MicroPython WebAssembly build; the pipeline fed by the sensor's frames; the
persistent queue on the interpreter's filesystem; the modem driver talking
to the RAK3172 emulator; the codec building every report. The day has busy
hours (a recorded scene: people crossing, stopping, in groups), quiet hours
(the sensor's empty frames, one a second) and a network outage of
`outage_h` hours from the start, so the queue carries its worst-case
backlog (max_records, merging) when the network comes back and the backlog
goes out in batches. `intervals` counts every interval closed: those
released (`released`, all sent by the day's end) and those the release
stage still holds (`held`: after the last busy window, the numbers of its
last people wait with every quiet interval after them for k more people,
docs/privacy.md).

Memory: the WebAssembly port collects garbage only between top-level
calls, so the day runs in chunks of a few node turns and after each turn
`gc.mem_alloc()` is read. Its peak is the heap the node needed without any
collection inside a chunk: more than a board needs (a board's GC runs when
its heap fills), so a board whose free heap is above it has room. The live
peak (right after a collection) and the emulator's own share (the modem is
a separate chip on a board; its emulator lives in this interpreter) are
reported beside it. The npm build grows its heap on demand
(MICROPY_GC_SPLIT_HEAP_AUTO in ports/webassembly/variants/pyscript), so the
heap is capped by this measurement and the board's FREE_HEAP, not by the
runtime: the test fails when the peak is above a board's free heap.
"""
import argparse
import json
import os
import sys
import tempfile

from . import REPO_ROOT, deploy, simulate
from .micropython import run_micropython

EMULATORS = os.path.join(REPO_ROOT, "tools", "vistelse_tools", "emulators")
SCENE = os.path.join(REPO_ROOT, "tools", "vistelse_tools", "board_scene.py")
DEV = "70b3d57ed0000099"

SETUP = r"""
import gc, json
gc.collect()
BASE = gc.mem_alloc()
from vistelse_node.clock import SimClock
from emulators import session, rak3172
clock = SimClock()
s = session.Session(lambda: clock.elapsed_ms, dev_eui=%(dev)r, join_failures=10 ** 9)
emu = rak3172.Rak3172(s)
gc.collect()
EMU = gc.mem_alloc() - BASE
from vistelse_node.node import Node
from vistelse_node.modem.rak3172 import Rak3172
from vistelse_node.sensors.replay import ReplaySensor
from vistelse_node import flashfs
%(extra_imports)s
import os
os.mkdir('/flash/state')
nf = json.loads(open('/flash/node.json').read())
m = Rak3172(emu, clock)
m.setup(nf['dev_eui'], nf['join_eui'], nf['app_key'])
KIND = nf['sensor']
EMPTY = %(empty)s
DAY_MS = %(day_ms)d
OUTAGE_MS = %(outage_ms)d
BUSY = %(busy)r             # (start_ms, end_ms) windows with the recorded scene
FRAME_MS = %(frame_ms)d
QUIET_MS = %(quiet_ms)d        # a turn in quiet hours: one empty frame


from board_scene import DaySensor


node = Node(nf, DaySensor(KIND, clock, BUSY, EMPTY, QUIET_MS, '/flash/scene.rec.jsonl'), m, clock, flashfs.FlashFS('/flash/state'), reset_cause='power_on')
import binascii
from vistelse_mcodec import compute_tag
RECEIPT_EVERY_MS = 4 * 3600000     # the gateway's default [receipts] every_h
receipt_no = 0
next_receipt = OUTAGE_MS


def _cbor_uint(v):
    if v < 24:
        return bytes((v,))
    if v < 256:
        return bytes((24, v))
    if v < 65536:
        return bytes((25, v >> 8, v & 255))
    return bytes((26, v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255))


def receipt(number, nxt):
    # what the gateway sends on a lossless network: everything sent is stored
    msg = b'\x83' + _cbor_uint(number) + _cbor_uint(nxt & 0xFFFF) + b'\x40'
    return compute_tag(msg, binascii.unhexlify(nf['dev_eui']), 3, binascii.unhexlify(nf['tag_key'])) + msg
gc.collect()
START = gc.mem_alloc() - BASE - EMU
peak = live_peak = 0
peak_at = None
max_queue = 0
max_records = 0             # unsent and sent-not-yet-receipted
turns = 0
"""

STEP = r"""
busy = node.sensor.window_at(clock.elapsed_ms) is not None
live = gc.mem_alloc()
if live > live_peak:
    live_peak = live
for _ in range(%(chunk)d):
    if clock.elapsed_ms >= OUTAGE_MS:
        s.join_failures = 0                    # the network is back
    if clock.elapsed_ms >= next_receipt:
        next_receipt += RECEIPT_EVERY_MS
        receipt_no += 1
        unsent = [r[0] for r in node.queue.records if r[0] not in node.queue.sent]
        s.queue_downlink(3, receipt(receipt_no, unsent[0] if unsent else node.queue.next_seq))
    node.step()
    a = gc.mem_alloc()
    if a > peak:
        peak = a
        peak_at = [clock.elapsed_ms // 1000, len(node.queue.records)]
    if node.queue.unsent() > max_queue:
        max_queue = node.queue.unsent()
    if len(node.queue.records) > max_records:
        max_records = len(node.queue.records)
    clock.advance(FRAME_MS if busy else QUIET_MS)
    turns += 1
    del s.uplinks[:]
    del emu.log[:]
_done = clock.elapsed_ms >= DAY_MS
if _done:
    gc.collect()
    print(json.dumps({"peak_alloc": peak - BASE - EMU, "live_peak": live_peak - BASE - EMU, "emulator": EMU,
                      "after_start": START, "turns": turns, "max_queue_records": max_queue, "max_records_held": max_records,
                      "queue_left": node.queue.unsent(), "held_sent": len(node.queue.sent),
                      "receipts": node.queue.receipt_no, "dropped": node.queue.dropped,
                      "intervals": node.queue.next_seq + (node.release.held[1] if node.release.held else 0),
                      "released": node.queue.next_seq, "held": node.release.held[1] if node.release.held else 0,
                      "held_people": node.release.people, "k": node.release.k,
                      "sent": node.sent, "peak_at": peak_at}))
"""

# the sensors' empty frames: an LD2450 frame with no target, a ToF frame of bare floor
EMPTY = {"ld2450": "bytes.fromhex('aaff0300' + '00' * 24 + '55cc')",
         "vl53l5cx": "([2800] * 64, [5] * 64)"}
EXTRA_IMPORTS = {"ld2450": "import vistelse_node.sensors.ld2450",
                 # the ToF node holds SparkFun's driver (compiled, from the pinned wheel) and our adapter
                 "vl53l5cx": "import qwiic_vl53l5cx, vistelse_node.sensors.vl53l5cx"}


def busy_windows(hours, busy_share):
    """Morning rush, midday and evening rush: three windows with `busy_share`
    of the day between them (ms from the start)."""
    day = int(hours * 3600000)
    d = int(day * busy_share / 3)
    return [(int(day * a), int(day * a) + d) for a in (0.30, 0.52, 0.72)]


def compiled_files(board, sensor, work):
    """[(host file, board path)]: the firmware as `vistelse deploy` builds it."""
    items = deploy.plan(board)
    if sensor == "vl53l5cx":
        items += deploy.dependency_items(sensor, os.path.join(work, "wheels"))
    files = deploy.compile_all(items, deploy.BOARDS[board]["arch"], os.path.join(work, "out"))
    out = []
    for host, target in files:
        if target.endswith(".py") and not target.startswith("boards/"):
            continue                 # boot.py, main.py: not imported by the node's loop
        out.append((host, "/flash/" + target))
    return out


def measure(sensor, board, hours=24.0, outage_h=12.0, chunk=1, interval_s=300, busy_share=0.015, quiet_ms=5000,
            timeout=900):
    with tempfile.TemporaryDirectory(prefix="vistelse-memory-") as work:
        files = compiled_files(board, sensor, work)
        site = simulate.square_site if sensor == "ld2450" else simulate.passage_site
        scene, header = site(6, seed=5, interval_s=interval_s, mean_gap_s=4.0)
        frames, _ = simulate.simulate(scene, header, seed=5)
        rec = os.path.join(work, "scene.rec.jsonl")
        with open(rec, "w") as f:
            f.write(json.dumps(header) + "\n")
            for fr in frames:
                f.write(json.dumps(fr) + "\n")
        nf = {"dev_eui": DEV, "join_eui": "0000000000000000", "app_key": "00112233445566778899aabbccddeeff",
              "tag_key": "00" * 32, "sensor": sensor, "mount": header["mount"],
              "config": {"interval_s": interval_s, "min_count": 3,
                         "zones": [z["polygon_mm"] for z in header["zones"]],
                         "lines": [[ln["a_mm"], ln["b_mm"]] for ln in header["lines"]]}}
        node_json = os.path.join(work, "node.json")
        with open(node_json, "w") as f:
            json.dump(nf, f)
        day_ms = int(hours * 3600000)
        params = {"dev": DEV, "extra_imports": EXTRA_IMPORTS[sensor], "empty": EMPTY[sensor], "day_ms": day_ms,
                  "outage_ms": int(outage_h * 3600000), "busy": busy_windows(hours, busy_share),
                  "frame_ms": 100 if sensor == "ld2450" else 67, "quiet_ms": quiet_ms}
        out = run_micropython(SETUP % params, step=STEP % {"chunk": chunk}, repeat=10 ** 7, timeout=timeout,
                              files=[(h, b) for h, b in files] + [(EMULATORS, "/flash/lib/emulators"),
                                                                    (SCENE, "/flash/lib/board_scene.py"),
                                                                    (rec, "/flash/scene.rec.jsonl"),
                                                                    (node_json, "/flash/node.json")])
        figures = json.loads(out.strip().splitlines()[-1])
        figures.update(sensor=sensor, board=board, hours=hours, outage_h=outage_h, chunk=chunk, busy_share=busy_share,
                       mpy_bytes=sum(os.path.getsize(h) for h, b in files if b.endswith(".mpy")))
        return figures


MODULES_SETUP = """
import gc
gc.collect()
BASE = gc.mem_alloc()
import vistelse_mcodec
from vistelse_node import node, record
from vistelse_node.modem import rak3172, wioe5
from vistelse_node.sensors import replay, ld2450, vl53l5cx
"""
MODULES_STEP = """
import gc
print(gc.mem_alloc() - BASE)
_done = True
"""


def module_ram(board):
    """Heap the node's compiled modules take once imported (after a collection):
    what freezing them into the firmware image (firmware/manifest.py) keeps
    off the heap, less their globals, which stay in RAM when frozen."""
    with tempfile.TemporaryDirectory(prefix="vistelse-memory-") as work:
        files = compiled_files(board, "ld2450", work)
        out = run_micropython(MODULES_SETUP, step=MODULES_STEP, repeat=1, files=files)
        return int(out.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m vistelse_tools.board_memory", description=__doc__.splitlines()[0])
    p.add_argument("--sensor", choices=("ld2450", "vl53l5cx"), default="ld2450")
    p.add_argument("--board", choices=sorted(deploy.BOARDS), default="esp32_devkitc")
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--outage-hours", type=float, default=12.0)
    p.add_argument("--modules", action="store_true", help="only the heap the imported .mpy modules take")
    args = p.parse_args(argv)
    if args.modules:
        print(json.dumps({"board": args.board, "module_ram": module_ram(args.board)}))
        return 0
    print(json.dumps(measure(args.sensor, args.board, args.hours, args.outage_hours)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
