"""How fast the whole node runs on CPython against real time: the demo's
and the tests' capacity.

One virtual node (tools/vistelse_tools/virtual_node.py: the firmware's
Node with pipeline, queue on an in-memory flash, send policy, modem driver
and AT emulator) runs a simulated scene for `--minutes`. The sensor frames
are generated before the clock starts, so the figure is the node's own
cost. The limit it is compared with is measured in the same run: the
simulated time covered per second of wall-clock time, against 1 (real
time, what a board must keep up with) — the ratio is how many such nodes
one core could keep in real time, and the highest `vistelse demo --speed`
one node of that kind allows (the scene simulator costs extra in the demo).

    .venv/bin/python benchmarks/bench_node.py
    .venv/bin/python benchmarks/bench_node.py --minutes 30
"""
import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (os.path.join(ROOT, "tools"), os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from node_fakes import MemFS  # noqa: E402
from vistelse_tools import simulate  # noqa: E402
from vistelse_tools.virtual_node import VirtualNode  # noqa: E402


class FrameList:
    """Pre-generated frames at their times (the firmware sensor interface)."""

    def __init__(self, frames, kind, clock):
        from vistelse_node.clock import ticks_diff
        self.ticks_diff = ticks_diff
        self.frames = [(f["t_ms"], bytes.fromhex(f["raw"]) if kind == "ld2450" else (f["mm"], f["status"]))
                       for f in frames]
        self.i = 0
        self.clock = clock
        self.t0 = clock.ticks_ms()

    def read_frame(self):
        if self.i >= len(self.frames):
            return None
        t, frame = self.frames[self.i]
        if self.ticks_diff(self.clock.ticks_ms(), self.t0) < t:
            return None
        self.i += 1
        return frame

    def reinit(self):
        pass


def run(kind, minutes):
    site = simulate.square_site if kind == "radar" else simulate.passage_site
    scene, header = site(minutes, seed=7, interval_s=300)
    frames, _ = simulate.simulate(scene, header, seed=7)
    frames = list(frames)
    node_file = {"dev_eui": "70b3d57ed0000999", "tag_key": "00" * 32, "sensor": header["sensor"],
                 "mount": header["mount"],
                 "config": {"interval_s": 300, "zones": [z["polygon_mm"] for z in header["zones"]],
                            "lines": [[l["a_mm"], l["b_mm"]] for l in header["lines"]]}}
    step = 100 if kind == "radar" else 50
    vn = VirtualNode(node_file, None, fs=MemFS(), sensor=lambda c: FrameList(frames, header["sensor"], c))
    t0 = time.perf_counter()
    vn.run_for(minutes * 60000, step_ms=step)
    wall = time.perf_counter() - t0
    sim = minutes * 60
    return {"sensor": header["sensor"], "simulated_s": sim, "frames": len(frames), "wall_s": round(wall, 3),
            "per_frame_us": round(wall / len(frames) * 1e6, 1), "times_real_time": round(sim / wall, 1),
            "uplinks": len(vn.uplinks)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=20)
    args = p.parse_args(argv)
    print("$ .venv/bin/python benchmarks/bench_node.py --minutes %g" % args.minutes)
    print("Python %s on %s, %d cores" % (platform.python_version(), platform.machine(), os.cpu_count() or 0))
    print("%-9s %10s %8s %9s %14s %14s %8s" % ("sensor", "simulated", "frames", "wall", "per frame",
                                              "x real time", "uplinks"))
    results = []
    for kind in ("radar", "tof"):
        r = run(kind, args.minutes)
        results.append(r)
        print("%-9s %9ds %8d %8.2fs %11.1f us %13.0fx %8d" % (r["sensor"], r["simulated_s"], r["frames"], r["wall_s"],
                                                              r["per_frame_us"], r["times_real_time"], r["uplinks"]))
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
