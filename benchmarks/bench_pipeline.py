"""Per-frame cost and memory of the node's measurement pipeline, against the
sensor's frame period.

Replays one radar (LD2450) and one overhead ToF (VL53L5CX) recording through
firmware/vistelse_node/pipeline.py, frame by frame at the recorded times,
closing an interval at every interval boundary as the node does:

- on CPython (this machine's Python), timing every feed with perf_counter_ns;
- under the official MicroPython WebAssembly build (run_micropython), where
  the frames are read from a file in MicroPython's own filesystem into
  preallocated buffers (as a driver would deliver them), timed with
  time.ticks_us/ticks_diff over the whole run and, because this build's
  ticks_us only advances in whole milliseconds, each frame also with the
  JavaScript host's performance.now() for the distribution;
- and, under MicroPython, the heap: gc.mem_alloc() right after a collection
  every 100 frames (the live heap), its maximum over the run, the live heap
  after 1000 frames against the end of the run (growth in steady state; the
  lowest value over a stretch compares like with like, as the heap rises
  and falls with the number of people tracked), and the bytes allocated
  per frame (garbage the collector has to clear). The pyscript WebAssembly
  build collects only when control returns to JavaScript, so the run goes
  in chunks of 100 frames called from the JS event loop.

The frame period is measured from the recording's timestamps in the same
run (median step) beside the header's nominal rate; the ratio per-frame
time / frame period is the share of the sensor's budget the pipeline uses.

    .venv/bin/python benchmarks/bench_pipeline.py
    .venv/bin/python benchmarks/bench_pipeline.py --radar hotel_ld2450 --tof hotel_vl53l5cx
    .venv/bin/python benchmarks/bench_pipeline.py --no-micropython
    .venv/bin/python benchmarks/bench_pipeline.py --repeat 5       # fastest of 5 timing runs
    git archive d302c83 firmware | tar -x -C /tmp/old
    .venv/bin/python benchmarks/bench_pipeline.py --repeat 5 --firmware /tmp/old/firmware

Prints the command, tables, and one JSON line per scene (both runtimes).
"""
import argparse
import json
import os
import platform
import shutil
import struct
import sys
import tempfile
import time

if "--firmware" in sys.argv[:-1]:
    # another firmware tree (an older commit: `git archive COMMIT firmware |
    # tar -x -C /tmp/old`), imported instead of firmware/ on both runtimes
    FIRMWARE = os.path.abspath(sys.argv[sys.argv.index("--firmware") + 1])
    sys.path.insert(0, FIRMWARE)
else:
    FIRMWARE = None

from vistelse_tools import REPO_ROOT  # noqa: E402 - after choosing the firmware
from vistelse_tools.micropython import BOARD_FILES, run_micropython  # noqa: E402
from vistelse_tools.recording import read_recording  # noqa: E402
from vistelse_tools.replay import pipeline_for  # noqa: E402

if FIRMWARE:
    BOARD_FILES = ((FIRMWARE, "/flash"),) + tuple(BOARD_FILES[1:])

RECORDINGS = os.environ.get("VISTELSE_RECORDINGS", os.path.join(REPO_ROOT, "recordings"))
GC_EVERY = 100            # frames between forced collections in the memory pass
STEADY_AFTER = 1000       # frames after which the heap is taken as warmed up
CALIBRATION_LOOP = 100000  # iterations of a plain loop, for comparing with a board


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def frame_period_ms(ts):
    steps = sorted(b - a for a, b in zip(ts, ts[1:]))
    return steps[len(steps) // 2]


def load(path):
    header, frames = read_recording(path)
    return header, list(frames)


# --- CPython ------------------------------------------------------------------

def bench_cpython(header, frames):
    pipe = pipeline_for(header)
    interval_ms = int(header["interval_s"] * 1000)
    radar = header["sensor"] == "ld2450"
    inputs = [(f["t_ms"], bytes.fromhex(f["raw"])) if radar else (f["t_ms"], f["mm"], f["status"]) for f in frames]
    per_frame = []
    closes = []
    totals = [0, 0, 0]
    k = 0
    clock = time.perf_counter_ns
    for item in inputs:
        t = item[0]
        while t >= (k + 1) * interval_ms:
            c0 = clock()
            iv = pipe.close_interval((k + 1) * interval_ms)
            closes.append(clock() - c0)
            _add_totals(totals, iv)
            k += 1
        t0 = clock()
        if radar:
            pipe.feed_ld2450(item[1], t)
        else:
            pipe.feed_tof(item[1], item[2], t)
        per_frame.append(clock() - t0)
    pipe.finish(t)
    _add_totals(totals, pipe.close_interval(t))
    us = [v / 1000.0 for v in per_frame]
    return {"frames": len(us), "mean_us": sum(us) / len(us), "p50_us": percentile(us, 0.5),
            "p99_us": percentile(us, 0.99), "max_us": max(us),
            "close_max_us": max(closes) / 1000.0 if closes else None, "totals": totals}


def _add_totals(totals, iv):
    for z in iv["zones"]:
        totals[0] += z["visits"]
    for ln in iv["lines"]:
        totals[1] += ln["in"]
        totals[2] += ln["out"]


# --- MicroPython --------------------------------------------------------------

def write_frames(header, frames, path):
    """Frames as fixed-size binary records: u32 t_ms, then the 30-byte radar
    frame, or 64 x u16 distances and 64 x u8 statuses."""
    with open(path, "wb") as f:
        for fr in frames:
            f.write(struct.pack("<I", fr["t_ms"]))
            if header["sensor"] == "ld2450":
                f.write(bytes.fromhex(fr["raw"]))
            else:
                f.write(struct.pack("<%dH" % len(fr["mm"]), *[max(0, min(65535, v)) for v in fr["mm"]]))
                f.write(bytes(v & 0xFF for v in fr["status"]))


MPY_SCRIPT = r'''
# The pyscript WebAssembly build collects garbage only when control returns
# to JavaScript (gc.collect() inside a script just asks for it), so the run
# is cut into chunks of GC_EVERY frames, each called from the JS event loop
# (setImmediate): every chunk starts with the heap just collected.
import gc, json, time, struct, js
from array import array
from vistelse_node.pipeline import Pipeline

now_ms = js.performance.now          # the host's sub-millisecond clock, for the distribution
cfg = json.load(open("/data/scene.json"))
MODE = "%(mode)s"
GC_EVERY = %(gc_every)d
STEADY = %(steady)d
N = cfg["frames"]
radar = cfg["sensor"] == "ld2450"
nz = cfg["mount"].get("resolution", 8) ** 2 if not radar else 0
tbuf = bytearray(4)
frame = bytearray(30)
mm = array("H", bytes(2 * nz))
status = bytearray(nz)
interval_ms = int(cfg["interval_s"] * 1000)
per = array("f", bytes(4 * N)) if MODE == "time" else None
heap0 = gc.mem_alloc()
pipe = Pipeline(cfg["sensor"], zones=cfg["zones"], lines=cfg["lines"], mount=cfg["mount"])
heap_pipeline = gc.mem_alloc() - heap0
# the harness's own records are preallocated, so they do not show as heap growth
CHUNKS = N // GC_EVERY + 2
live = array("i", bytes(4 * CHUNKS))
allocs = array("f", bytes(4 * CHUNKS))
gaps = array("f", bytes(4 * CHUNKS))
totals = [0, 0, 0]
st = {"i": 0, "k": 0, "t": 0, "busy_us": 0, "end": None, "c": 0}
f = open("/data/frames.bin", "rb")


def add(iv):
    for z in iv["zones"]:
        totals[0] += z["visits"]
    for l in iv["lines"]:
        totals[1] += l["in"]
        totals[2] += l["out"]


def chunk(*_):
    c = st["c"]
    if st["end"] is not None:
        gaps[c] = now_ms() - st["end"]        # collection + scheduling, between chunks
    a0 = gc.mem_alloc()                       # live heap: collected on return to JS
    live[c] = a0
    i = i0 = st["i"]
    stop = min(N, i + GC_EVERY)
    k = st["k"]
    busy = 0
    while i < stop:
        f.readinto(tbuf)
        t = struct.unpack_from("<I", tbuf)[0]
        if radar:
            f.readinto(frame)
        else:
            f.readinto(mm)
            f.readinto(status)
        while t >= (k + 1) * interval_ms:
            add(pipe.close_interval((k + 1) * interval_ms))
            k += 1
        if MODE == "time":
            t0 = time.ticks_us()
            h0 = now_ms()
        if radar:
            pipe.feed_ld2450(frame, t)
        else:
            pipe.feed_tof(mm, status, t)
        if MODE == "time":
            per[i] = (now_ms() - h0) * 1000.0
            busy += time.ticks_diff(time.ticks_us(), t0)
        i += 1
    st["busy_us"] += busy
    st["i"], st["k"], st["t"] = i, k, t
    allocs[c] = (gc.mem_alloc() - a0) / (i - i0)        # bytes allocated per frame (garbage)
    st["c"] = c + 1
    if i < N:
        gc.collect()                          # requested; done when this call returns
        st["end"] = now_ms()
        js.setImmediate(chunk)
    else:
        finish()


def finish():
    pipe.finish(st["t"])
    add(pipe.close_interval(st["t"]))
    out = {"mode": MODE, "frames": N, "totals": totals, "heap_pipeline": heap_pipeline}
    if MODE == "time":
        out["busy_us"] = st["busy_us"]
        s = sorted(per)
        out["host_mean_us"] = sum(s) / N
        out["host_p50_us"] = s[N // 2]
        out["host_p99_us"] = s[min(N - 1, int(0.99 * N))]
        out["host_max_us"] = s[-1]
        gs = sorted(gaps[1:st["c"]])
        out["between_chunks_p50_us"] = gs[len(gs) // 2] * 1000.0
        out["between_chunks_max_us"] = gs[-1] * 1000.0
        t0 = time.ticks_us()
        x = 0
        for j in range(%(calibration)d):
            x += j
        out["calibration_us"] = time.ticks_diff(time.ticks_us(), t0)
    else:
        # live[c] is the heap after c chunks (c * GC_EVERY frames); live[0] before any frame
        n = st["c"]
        series = list(live[1:n])
        out["live_after_steady"] = live[STEADY // GC_EVERY] if n > STEADY // GC_EVERY else None
        out["live_first"] = series[0]
        out["live_end"] = series[-1]
        out["live_max"] = max(series)
        out["live_series"] = series
        out["alloc_per_frame"] = sum(allocs[:n]) / n
    print(json.dumps(out))


chunk()
'''


def bench_micropython(header, frames, workdir, repeat=1):
    frames_path = os.path.join(workdir, "frames.bin")
    scene_path = os.path.join(workdir, "scene.json")
    write_frames(header, frames, frames_path)
    cfg = {"sensor": header["sensor"], "zones": [z["polygon_mm"] for z in header["zones"]],
           "lines": [[l["a_mm"], l["b_mm"]] for l in header["lines"]], "mount": header["mount"],
           "interval_s": header["interval_s"], "frames": len(frames)}
    with open(scene_path, "w") as f:
        json.dump(cfg, f)
    files = tuple(BOARD_FILES) + ((frames_path, "/data/frames.bin"), (scene_path, "/data/scene.json"))
    result = {}
    for mode in ("time", "memory"):
        script = MPY_SCRIPT % {"mode": mode, "gc_every": GC_EVERY, "steady": STEADY_AFTER,
                               "calibration": CALIBRATION_LOOP}
        # timing: the run least disturbed by the rest of the machine; memory is the same every run
        for _ in range(repeat if mode == "time" else 1):
            out = json.loads(run_micropython(script, files=files, timeout=1800).strip().splitlines()[-1])
            if mode not in result or out.get("busy_us", 0) < result[mode].get("busy_us", 0):
                result[mode] = out
    return result


def micropython_version():
    try:
        out = run_micropython("import sys; print(sys.version, sys.implementation._machine)")
        return out.strip()
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        return "unavailable (%s)" % e


# --- report -------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recordings", default=RECORDINGS, help="folder of recordings (default: recordings)")
    p.add_argument("--radar", default="zara01_ld2450", help="radar scene (default: the most crowded one)")
    p.add_argument("--tof", default="hermes_corridor_vl53l5cx", help="ToF scene (default: the busiest one)")
    p.add_argument("--no-micropython", action="store_true", help="CPython only")
    p.add_argument("--repeat", type=int, default=1,
                   help="time each runtime this many times and keep the fastest run (a shared machine)")
    p.add_argument("--firmware", help="measure this firmware folder instead of firmware/ (to compare commits)")
    args = p.parse_args(argv)
    command = " ".join([".venv/bin/python", "benchmarks/bench_pipeline.py"] + list(argv if argv is not None
                                                                                    else sys.argv[1:]))
    print("command: %s" % command)
    if FIRMWARE:
        import vistelse_node
        print("firmware: %s" % os.path.dirname(os.path.dirname(vistelse_node.__file__)))
    print("machine: %s, %s CPUs, CPython %s" % (platform.processor() or platform.machine(), os.cpu_count(),
                                                platform.python_version()))
    if not args.no_micropython:
        print("MicroPython: %s (WebAssembly, under node %s)" % (micropython_version(), _node_version()))
    rows = []
    workdir = tempfile.mkdtemp(prefix="bench_pipeline_")
    try:
        for name in (args.radar, args.tof):
            path = os.path.join(args.recordings, name + ".rec.jsonl.gz")
            if not os.path.exists(path):
                path = os.path.join(args.recordings, name + ".rec.jsonl")
            header, frames = load(path)
            period = frame_period_ms([f["t_ms"] for f in frames])
            nominal = 1000.0 / header["rate_hz"]
            cp = min((bench_cpython(header, frames) for _ in range(args.repeat)), key=lambda r: r["mean_us"])
            row = {"scene": name, "sensor": header["sensor"], "frames": len(frames),
                   "frame_period_ms": period, "nominal_period_ms": nominal, "cpython": cp}
            if not args.no_micropython:
                mp = bench_micropython(header, frames, workdir, args.repeat)
                row["micropython"] = mp
                row["same_totals"] = mp["time"]["totals"] == cp["totals"] == mp["memory"]["totals"]
            rows.append(row)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print("per-frame processing time, and its ratio to the frame period measured in the recording")
    print("%-26s %-11s %6s %8s %9s %9s %9s %9s %8s %8s %8s" % (
        "scene", "runtime", "frames", "period", "mean", "p99", "max", "interval", "mean/T", "p99/T", "max/T"))
    for r in rows:
        T = r["frame_period_ms"] * 1000.0
        cp = r["cpython"]
        print("%-26s %-11s %6d %6.0fms %7.0fus %7.0fus %7.0fus %7.0fus %8.4f %8.4f %8.4f" % (
            r["scene"], "CPython", r["frames"], r["frame_period_ms"], cp["mean_us"], cp["p99_us"],
            cp["max_us"], cp["close_max_us"] or 0, cp["mean_us"] / T, cp["p99_us"] / T, cp["max_us"] / T))
        if "micropython" in r:
            mt = r["micropython"]["time"]
            mean = mt["busy_us"] / mt["frames"]
            p99, mx = mt["host_p99_us"], mt["host_max_us"]
            print("%-26s %-11s %6d %6.0fms %7.0fus %7.0fus %7.0fus %9s %8.4f %8.4f %8.4f" % (
                r["scene"], "MicroPython", mt["frames"], r["frame_period_ms"], mean, p99, mx, "",
                mean / T, p99 / T, mx / T))
    if any("micropython" in r for r in rows):
        print()
        print("MicroPython heap, bytes (live = gc.mem_alloc() right after a collection, every %d frames;"
              " it includes the imported firmware modules)" % GC_EVERY)
        print("%-26s %9s %9s %9s %9s %16s %16s %12s" % (
            "scene", "live@%d" % GC_EVERY, "live@%d" % STEADY_AFTER, "live@end", "live max",
            "min %d-%d" % (STEADY_AFTER, 2 * STEADY_AFTER), "min last %d" % STEADY_AFTER, "alloc/frame"))
        for r in rows:
            if "micropython" not in r:
                continue
            m = r["micropython"]["memory"]
            series = m["live_series"]            # series[k]: after (k + 1) * GC_EVERY frames
            per = STEADY_AFTER // GC_EVERY
            early = series[per - 1:2 * per]
            late = series[-per:]
            print("%-26s %9d %9s %9d %9d %16s %16s %12.0f" % (
                r["scene"], m["live_first"], m["live_after_steady"], m["live_end"], m["live_max"],
                min(early) if early else "?", min(late) if late else "?", m["alloc_per_frame"]))
        print("(the live heap rises and falls with the number of people tracked; the minimum over a stretch"
              " is its size with the fewest people, and steady state means it does not grow)")
        print()
        print("collection pause between chunks (upper bound: includes the JS event loop's scheduling):")
        for r in rows:
            if "micropython" in r:
                mt = r["micropython"]["time"]
                print("  %-26s median %.0f us, max %.0f us" % (r["scene"], mt["between_chunks_p50_us"],
                                                              mt["between_chunks_max_us"]))
        cal = [r["micropython"]["time"]["calibration_us"] for r in rows if "micropython" in r]
        print()
        print("calibration: `x = 0; for j in range(%d): x += j` took %s us under MicroPython here;"
              " run the same loop on a board to scale the MicroPython figures" % (
                  CALIBRATION_LOOP, " / ".join(str(c) for c in cal)))
        print("same aggregates on CPython and MicroPython: %s" % all(r.get("same_totals") for r in rows))
    print()
    for r in rows:
        print(json.dumps(r, sort_keys=True))
    return 0


def _node_version():
    node = shutil.which("node")
    if not node:
        return "?"
    import subprocess
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
