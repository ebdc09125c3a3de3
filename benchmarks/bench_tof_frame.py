"""The VL53L5CX's per-frame parse under MicroPython: SparkFun's
get_ranging_data() (sparkfun-qwiic-vl53l5cx 2.0.0) against the adapter's
parse_ranging(), on the same 8x8 result buffer, under the official
MicroPython WebAssembly build (both compiled with mpy-cross as deployed).

    .venv/bin/python benchmarks/bench_tof_frame.py [--frames 200]

Prints one JSON line: microseconds per frame for each, their ratio, and the
garbage each frame leaves (gc.mem_alloc() growth). The I2C transfer itself
(~1.4 KB at 1 MHz, ~12 ms on the wire) is the same for both and not in it.
The WebAssembly build runs on this machine's CPU: a 240 MHz ESP32 or a
480 MHz H743 is slower by a factor to measure on the board; the ratio holds.
"""
import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tools"), os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests")]

from test_tof_bus import scene, st_buffer          # noqa: E402  the same buffer as the tests
from vistelse_tools import deploy                   # noqa: E402
from vistelse_tools.micropython import run_micropython   # noqa: E402

SCRIPT = """
import gc, time, qwiic_vl53l5cx
from vistelse_node.sensors import vl53l5cx as tof
raw = bytes.fromhex(%r)

class Stand:
    pos = 0
    def write_byte(self, a, hi, lo):
        self.pos = (hi << 8) | lo
    def read_block(self, a, r, n):
        d = raw[self.pos:self.pos + n]
        self.pos += n
        return d

drv = qwiic_vl53l5cx.QwiicVL53L5CX(i2c_driver=Stand())
drv.data_read_size = len(raw)
N = %d
gc.collect()
a0 = gc.mem_alloc()
t0 = time.ticks_us()
for _ in range(N):
    drv.get_ranging_data()
t1 = time.ticks_us()
theirs_us = time.ticks_diff(t1, t0) / N
theirs_garbage = (gc.mem_alloc() - a0) // N
mm = [0] * 64
st = [0] * 64
buf = bytearray(raw)
gc.collect()
a0 = gc.mem_alloc()
t0 = time.ticks_us()
for _ in range(N):
    tof.parse_ranging(buf, len(buf), 64, mm, st)
t1 = time.ticks_us()
ours_us = time.ticks_diff(t1, t0) / N
ours_garbage = (gc.mem_alloc() - a0) // N
print(theirs_us, ours_us, theirs_garbage, ours_garbage)
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200)
    args = p.parse_args(argv)
    raw = st_buffer(*scene(), decoy=False)
    with tempfile.TemporaryDirectory() as work:
        items = deploy.plan("weact_h743") + deploy.dependency_items("vl53l5cx", os.path.join(work, "wheels"))
        files = deploy.compile_all(items, "armv7emdp", os.path.join(work, "out"))
        files = [(h, "/flash/" + t) for h, t in files if t.endswith(".mpy")]
        out = run_micropython(SCRIPT % (raw.hex(), args.frames), files=files, heapsize=8 * 1024 * 1024)
    theirs, ours, g_theirs, g_ours = out.split()
    print(json.dumps({"frames": args.frames, "buffer_bytes": len(raw), "sparkfun_us": float(theirs),
                      "adapter_us": float(ours), "ratio": round(float(theirs) / float(ours), 1),
                      "sparkfun_garbage_bytes": int(g_theirs), "adapter_garbage_bytes": int(g_ours)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
