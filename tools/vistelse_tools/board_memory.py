"""The node's RAM at board size: a simulated day under real MicroPython.

    python -m vistelse_tools.board_memory --sensor ld2450             # at the tightest board
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

Memory: the heap is capped at the board's. The runtime starts with the
heap-size option for which the node, once the runtime and the modem's
emulator are set up (a modem is a separate chip on a board), has exactly
the board's free heap (sized_heap; FREE_HEAP of the board file, plus the
loaded modules on a board whose node runs from a frozen image). The npm
build (ports/webassembly/variants/pyscript: MICROPY_GC_SPLIT_HEAP_AUTO)
adds a heap area where a board would raise MemoryError; every turn checks
gc.mem_alloc() + gc.mem_free() against the start and the day stops, with
"grew" set, the first time it rose. The port collects garbage only when
control returns to the top level (ports/webassembly/main.c: gc_collect()
only sets gc_collect_pending; gc_collect_top_level runs it), so the day
runs one node turn per top-level call and nothing of a turn's garbage is
collected inside it: harder than a board, whose collector runs when its
heap fills. Reported: the peak of gc.mem_alloc() after a turn
(peak_alloc), the live peak (after a collection), the largest free block
then (micropython.mem_info()'s "max free sz"), the heap given, all
without the runtime's and the emulator's own share.
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
# beside the firmware on the simulated board: the modem's emulator and the day of frames
RIG_FILES = [(EMULATORS, "/flash/lib/emulators"), (SCENE, "/flash/lib/board_scene.py")]
FRAME_MS = {"ld2450": 100, "vl53l5cx": 67}       # the LD2450 reports at 10 Hz, the ToF node ranges at 15 Hz
DEV = "70b3d57ed0000099"

# Set-up as top-level calls, so that what one leaves as garbage (the
# emulator's source compiled at import, the node file parsed) is collected
# before the next reads gc.mem_alloc(): this port's gc.collect() only asks
# for a collection, made when control returns to the top level
# (ports/webassembly/main.c: gc_collect sets gc_collect_pending,
# gc_collect_top_level runs it when external_call_depth drops to 0).
RUNTIME = """
import gc, json, micropython
gc.collect()
"""
EMULATOR = r"""
BASE = gc.mem_alloc()
from vistelse_node.clock import SimClock
from emulators import session, rak3172
clock = SimClock()
s = session.Session(lambda: clock.elapsed_ms, dev_eui=%(dev)r, join_failures=10 ** 9)
emu = rak3172.Rak3172(s)
gc.collect()
"""
# gc.mem_free() in this build adds the room a new heap area may take
# (ports/webassembly/main.c gc_get_max_new_split: 128 MiB; py/modgc.c)
NEW_SPLIT = 128 * 1024 * 1024
HEAP_GIVEN = """
EMU = gc.mem_alloc() - BASE
HEAP = gc.mem_alloc() + gc.mem_free()          # rises if the runtime adds a heap area
GIVEN = gc.mem_free() - %d   # the heap the node has: the board's free heap
""" % NEW_SPLIT

SETUP = r"""
from vistelse_node.node import Node
from vistelse_node.modem.rak3172 import Rak3172
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


node = Node(nf, DaySensor(KIND, clock, BUSY, EMPTY, QUIET_MS, '/flash/scene.rec.jsonl'), m, clock,
            flashfs.FlashFS('/flash/state'), reset_cause='power_on')
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
"""
STARTED = r"""
START = gc.mem_alloc() - BASE - EMU
peak = live_peak = 0
peak_at = None
collected = True
grew = None                 # [s, heap after]: the runtime added a heap area, where a board raises MemoryError
max_queue = 0
max_records = 0             # unsent and sent-not-yet-receipted
turns = 0
"""

LIVE_MARK = "@live"
# A turn whose heap in use ends above the live peak ends asking for a
# collection, so the next starts with only what is live (below the peak a
# collection cannot make a new one); where live reaches a new peak, mem_info() prints the
# largest free block then ("max free sz", in 16-byte blocks: py/gc.c
# gc_dump_info), after a marker line.
STEP = r"""
LIVE_MARK = %(mark)r
busy = node.sensor.window_at(clock.elapsed_ms) is not None
if collected:
    live = gc.mem_alloc()
    if live > live_peak:
        live_peak = live
        print(LIVE_MARK)
        micropython.mem_info()
a = 0
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
    if grew is None and a + gc.mem_free() > HEAP:
        grew = [clock.elapsed_ms // 1000, a + gc.mem_free() - %(new_split)d]
    if node.queue.unsent() > max_queue:
        max_queue = node.queue.unsent()
    if len(node.queue.records) > max_records:
        max_records = len(node.queue.records)
    clock.advance(FRAME_MS if busy else QUIET_MS)
    turns += 1
    del s.uplinks[:]
    del emu.log[:]
collected = a > live_peak        # only then can the live heap be a new peak: ask for a collection
if collected:
    gc.collect()
_done = clock.elapsed_ms >= DAY_MS or grew is not None
if _done:
    print(json.dumps({"peak_alloc": peak - BASE - EMU, "live_peak": live_peak - BASE - EMU, "emulator": EMU,
                      "heap_given": GIVEN, "grew": grew, "after_start": START, "turns": turns, "max_queue_records": max_queue, "max_records_held": max_records,
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


def node_heap(board, modules=None):
    """The heap the node's run gets for `board`: its FREE_HEAP, plus, where
    the node runs from a frozen image (FROZEN_REQUIRED), the heap the
    loaded modules take here (module_ram), which the image keeps in flash."""
    facts = deploy.board_facts(board)
    if facts["FROZEN_REQUIRED"]:
        return facts["FREE_HEAP"] + (module_ram(board) if modules is None else modules)
    return facts["FREE_HEAP"]


def tightest_board(sensor, modules=None):
    """(board, heap) among the boards that list `sensor`: the one whose node
    heap (node_heap) is smallest. Why one run there stands for all of them:
    this runtime never collects because its heap is full (it grows it
    instead, ports/webassembly/main.c), only at top-level returns once 16 KiB
    were allocated (gc_alloc_threshold, mp_js_init), so what the heap holds
    and where (first fit, py/gc.c gc_alloc) does not depend on its size as
    long as it does not grow: a day that never grows the smallest heap runs
    identically in every larger one. The boards' -march changes no byte of
    the node's bytecode (no native or viper code), and all are 32-bit with
    16-byte GC blocks, as WebAssembly is."""
    boards = [b for b in sorted(deploy.BOARDS) if sensor in deploy.board_facts(b)["SENSORS"]]
    if not boards:
        raise ValueError("no board lists the sensor %s" % sensor)
    return min(((b, node_heap(b, modules)) for b in boards), key=lambda bh: bh[1])


def sized_heap(free, files):
    """The runtime's heapsize option for which the node starts with `free`
    bytes of heap (gc.mem_free() once the runtime and the modem's emulator
    are set up): the GC's own tables (py/gc.c gc_setup_area) and the
    emulator are not the board's, so the heap is that much bigger. Found by
    trying: the runtime is deterministic, each try takes a fraction of a second."""
    heapsize = free + 48 * 1024
    probe = HEAP_GIVEN + "print(GIVEN)\n"
    for _ in range(6):
        given = int(run_micropython([RUNTIME, EMULATOR % {"dev": DEV}, probe], heapsize=heapsize,
                                    files=files).strip().splitlines()[-1])
        if free <= given < free + 64:
            return heapsize
        heapsize += (free - given) + (free - given) // 32 + 16
    raise RuntimeError("no heap size gives %d bytes free (last: %d gave %d)" % (free, heapsize, given))


def measure(sensor, board=None, hours=24.0, outage_h=12.0, chunk=1, interval_s=300, busy_share=0.015,
            quiet_ms=5000, timeout=900, free_heap=None):
    """A simulated day of the node under MicroPython with its heap capped
    at `free_heap` (default: node_heap of the board; board default: the
    tightest board for the sensor). Figures as a dict; "grew" is not None
    when the heap had to grow, where a board would have raised MemoryError."""
    if board is None:
        board, free_heap = tightest_board(sensor)
    elif free_heap is None:
        free_heap = node_heap(board)
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
        files = files + RIG_FILES + [(rec, "/flash/scene.rec.jsonl"), (node_json, "/flash/node.json")]
        heapsize = sized_heap(free_heap, files)
        day_ms = int(hours * 3600000)
        params = {"dev": DEV, "extra_imports": EXTRA_IMPORTS[sensor], "empty": EMPTY[sensor], "day_ms": day_ms,
                  "outage_ms": int(outage_h * 3600000), "busy": busy_windows(hours, busy_share),
                  "frame_ms": FRAME_MS[sensor], "quiet_ms": quiet_ms}
        out = run_micropython([RUNTIME, EMULATOR % params, HEAP_GIVEN, SETUP % params, STARTED],
                              step=STEP % {"chunk": chunk, "new_split": NEW_SPLIT, "mark": LIVE_MARK}, repeat=10 ** 7,
                              timeout=timeout, heapsize=heapsize, files=files)
        lines = out.strip().splitlines()
        figures = json.loads(lines[-1])
        # the largest free block when the live heap was at its peak: the last mem_info after a marker
        at = len(lines) - 1 - lines[::-1].index(LIVE_MARK)
        info = " ".join(lines[at + 1:at + 4])
        figures["largest_free_at_live_peak"] = 16 * int(info.split("max free sz:")[1].split()[0])
        figures.update(sensor=sensor, board=board, heapsize=heapsize, free_heap=free_heap, hours=hours,
                       outage_h=outage_h, chunk=chunk, busy_share=busy_share,
                       mpy_bytes=sum(os.path.getsize(h) for h, b in files if b.endswith(".mpy")))
        return figures


MODULES_SETUP = """
BASE = gc.mem_alloc()
import vistelse_mcodec
from vistelse_node import node, record
from vistelse_node.modem import rak3172, wioe5
from vistelse_node.sensors import replay, ld2450, vl53l5cx
gc.collect()
"""


def module_ram(board):
    """Heap the node's compiled modules take once imported (after a collection):
    what freezing them into the firmware image (firmware/manifest.py) keeps
    off the heap, less their globals, which stay in RAM when frozen."""
    with tempfile.TemporaryDirectory(prefix="vistelse-memory-") as work:
        files = compiled_files(board, "ld2450", work)
        out = run_micropython([RUNTIME, MODULES_SETUP, "print(gc.mem_alloc() - BASE)"], files=files)
        return int(out.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m vistelse_tools.board_memory", description=__doc__.splitlines()[0])
    p.add_argument("--sensor", choices=("ld2450", "vl53l5cx"), default="ld2450")
    p.add_argument("--board", choices=sorted(deploy.BOARDS),
                   help="heap capped at this board's (default: the tightest board for the sensor)")
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--outage-hours", type=float, default=12.0)
    p.add_argument("--modules", action="store_true", help="only the heap the imported .mpy modules take")
    args = p.parse_args(argv)
    if args.modules:
        board = args.board or "esp32_devkitc"
        print(json.dumps({"board": board, "module_ram": module_ram(board)}))
        return 0
    print(json.dumps(measure(args.sensor, args.board, args.hours, args.outage_hours)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
