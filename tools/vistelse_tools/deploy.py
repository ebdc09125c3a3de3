"""`vistelse deploy`: put the node firmware on a board with mpremote.

    vistelse deploy --port /dev/ttyUSB0 --board esp32_devkitc --config node/vistelse.json
    vistelse deploy --port /dev/ttyACM0 --board weact_h743 --dry-run

1. compiles every firmware module and the node codec with mpy-cross for the
   board's architecture (boot.py, main.py and the board file stay source,
   so an installer can read and edit them on the board);
2. installs the sensor's dependencies (the node file's "sensor", or
   --sensor): for the VL53L5CX, the pinned PyPI wheels of its driver and
   I2C layer, checked by SHA-256, unpacked into lib/ (Python compiled like
   the firmware, the ToF firmware blob copied as it is); --no-deps skips them;
3. checks, before anything is copied, that the board's filesystem has
   room for the files and that its free heap (after a soft reset) holds the
   node's measured peak for the sensor (docs/firmware.md, board table), and
   stops with a clear message if not;
4. copies everything, and the node's configuration file from
   `vistelse provision`, with `mpremote fs cp`;
5. reads back the SHA-256 of every file on the board and compares, and
   resets the board so the new firmware starts.

A node that is running has its watchdog running, and nothing stops a
machine.WDT once started (ESP32 and STM32 ports). So every step re-times
the watchdog to the board's longest period (WDT_MAX_MS) and feeds it
before the next file: the copy is never cut short by a reset, and the
reset at the end starts the node again.

Paths on the board are relative to its flash (`:main.py`, `:lib/...`), so
the same layout works on an ESP32 (flash at /) and an STM32 (flash at /flash).
"""
import argparse
import ast
import collections
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from . import REPO_ROOT

FIRMWARE = os.path.join(REPO_ROOT, "firmware")
NODE_CODEC = os.path.join(REPO_ROOT, "codecs", "micropython", "vistelse_mcodec.py")

# mpy-cross architecture and mip packages per board. The sensors' drivers
# come from pinned wheels (SENSOR_DEPS), not from mip (docs/firmware.md).
# wdt_max_ms: the longest watchdog period the port allows (STM32 IWDG:
# 4096 x 256 / 32 kHz LSI = 32.7 s; ESP32 task watchdog: no small bound).
# mcu: the microcontroller (vistelse airtime's power figures).
BOARDS = {
    "esp32_devkitc": {"arch": "xtensawin", "mip": [], "wdt_max_ms": 60000, "mcu": "esp32"},
    "esp32_wrover": {"arch": "xtensawin", "mip": [], "wdt_max_ms": 60000, "mcu": "esp32"},
    "nucleo_f446re": {"arch": "armv7emsp", "mip": [], "wdt_max_ms": 30000, "mcu": "stm32f446"},
    "weact_h743": {"arch": "armv7emdp", "mip": [], "wdt_max_ms": 30000, "mcu": "stm32h743"},
}
# The node's peak heap (gc.mem_alloc) per sensor, measured at board size by
# tests/test_board_memory.py (docs/firmware.md, board table), with margin for
# fragmentation: a board with less free heap after a soft reset is refused.
NODE_HEAP_BYTES = {"ld2450": 108 * 1024, "vl53l5cx": 144 * 1024}
KEEP_SOURCE = ("boot.py", "main.py")

# The sensors' MicroPython dependencies: wheels from PyPI, pinned by version
# and SHA-256, unpacked into lib/ on the board. `mpremote mip install
# github:sparkfun/...` is not used: it takes qwiic_i2c from a moving branch,
# and its layout (lib/qwiic_vl53l5cx.py beside a lib/qwiic_vl53l5cx/ folder
# holding only vl53l5cx_bin/) imports the empty folder instead of the module.
Wheel = collections.namedtuple("Wheel", "requirement filename sha256 skip")
WHEELS = {
    "sparkfun-qwiic-vl53l5cx": Wheel(
        "sparkfun-qwiic-vl53l5cx==2.0.0", "sparkfun_qwiic_vl53l5cx-2.0.0-py3-none-any.whl",
        "5bd049cabecb14b4b9895ee5a781edc7859ef771ef83d9aca5e951d89e227c63", ()),
    # qwiic_i2c imports every platform backend it finds and keeps those that
    # import: on MicroPython only micropython_i2c.py is ever used. linux_i2c.py
    # (smbus2) and circuitpython_i2c.py (busio) would cost flash and, at every
    # import, RAM; without them the package falls back as designed.
    "sparkfun-qwiic-i2c": Wheel(
        "sparkfun-qwiic-i2c==2.0.0", "sparkfun_qwiic_i2c-2.0.0-py3-none-any.whl",
        "75a8f0353fbd3208780f9c0a71cc87d050c7853538d0a7198121b318c0d2ecd5",
        ("qwiic_i2c/linux_i2c.py", "qwiic_i2c/circuitpython_i2c.py")),
}
# The driver finds its firmware blob at dataPath, the board file's
# TOF_DATA_PATH: <flash>/lib/qwiic_vl53l5cx/vl53l5cx_bin, the wheel's layout.
SENSOR_DEPS = {
    "ld2450": (),
    "vl53l5cx": ("sparkfun-qwiic-vl53l5cx", "sparkfun-qwiic-i2c"),
}


def mpremote_cmd():
    exe = os.path.join(os.path.dirname(sys.executable), "mpremote")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "mpremote"]


def _plain_value(text):
    """A literal, or sums and products of numbers (110 * 1024)."""
    def value(node):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}[type(node.op)]
        return ast.literal_eval(node)
    return value(ast.parse(text, mode="eval").body)


def board_facts(board):
    """The board file's settings that are plain values (FREE_HEAP, SENSORS,
    MODEM, FROZEN_REQUIRED, ...), read without importing it."""
    facts = {}
    with open(os.path.join(FIRMWARE, "boards", board + ".py")) as f:
        for line in f:
            key, eq, value = line.partition(" = ")
            if eq and key.isupper() and key.replace("_", "").isalnum():
                try:
                    facts[key] = _plain_value(value.split("#")[0].strip())
                except (ValueError, SyntaxError):
                    pass              # an expression: not a fact this reads
    return facts


def frozen_required(board):
    """FROZEN_REQUIRED from the board file: its node must run from a frozen image."""
    return board_facts(board).get("FROZEN_REQUIRED") is True


def plan(board, frozen=False):
    """[(local source, board path, compile?)] for the board. frozen: the
    board's MicroPython image has firmware/manifest.py frozen in, so the
    modules it freezes are not copied (on the filesystem they would come
    first on sys.path and take the heap freezing saves)."""
    items = []
    for directory, dirs, files in os.walk(FIRMWARE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel_dir = os.path.relpath(directory, FIRMWARE)
        for name in sorted(files):
            if not name.endswith(".py") or name == "manifest.py":
                continue              # manifest.py is for freezing, not for the board
            rel = name if rel_dir == "." else os.path.join(rel_dir, name).replace(os.sep, "/")
            if rel.startswith("boards/"):
                if rel not in ("boards/%s.py" % board, "boards/__init__.py"):
                    continue           # only this board's map goes on the board
                items.append((os.path.join(directory, name), rel, False))
            elif rel in KEEP_SOURCE:
                items.append((os.path.join(directory, name), rel, False))
            elif not frozen:
                items.append((os.path.join(directory, name), rel[:-3] + ".mpy", True))
    if not frozen:
        items.append((NODE_CODEC, "lib/vistelse_mcodec.mpy", True))
    return items


def wheel_cache():
    """Where verified wheels are kept between deploys ($VISTELSE_WHEEL_CACHE overrides)."""
    if os.environ.get("VISTELSE_WHEEL_CACHE"):
        return os.environ["VISTELSE_WHEEL_CACHE"]
    if sys.prefix != sys.base_prefix:                       # the venv: .venv/cache/wheels
        return os.path.join(sys.prefix, "cache", "wheels")
    return os.path.join(os.path.expanduser("~"), ".cache", "vistelse", "wheels")


def check_wheel(path, wheel):
    """Raise unless the file is the pinned wheel, byte for byte."""
    got = sha256(path)
    if got != wheel.sha256:
        raise RuntimeError("%s: SHA-256 %s, expected %s for %s. The file is not the pinned wheel "
                           "(tampered, corrupt or rebuilt); remove it and check before deploying again"
                           % (path, got, wheel.sha256, wheel.requirement))


def fetch_wheels(wheels, cache=None):
    """Paths of the wheels in the cache, downloaded with pip if missing, all checked by SHA-256."""
    cache = cache or wheel_cache()
    missing = [w for w in wheels if not os.path.exists(os.path.join(cache, w.filename))]
    if missing:
        os.makedirs(cache, exist_ok=True)
        incoming = tempfile.mkdtemp(prefix="download-", dir=cache)
        try:
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                   "--disable-pip-version-check", "--quiet", "--dest", incoming]
                                  + [w.requirement for w in missing], capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise RuntimeError("pip download %s failed: %s" % (" ".join(w.requirement for w in missing),
                                                                   (proc.stderr or proc.stdout).strip()[-2000:]))
            for w in missing:
                path = os.path.join(incoming, w.filename)
                if not os.path.exists(path):
                    raise RuntimeError("pip download %s gave %s, not %s"
                                       % (w.requirement, ", ".join(sorted(os.listdir(incoming))), w.filename))
                check_wheel(path, w)       # only verified wheels enter the cache
                os.replace(path, os.path.join(cache, w.filename))
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
    paths = []
    for w in wheels:
        path = os.path.join(cache, w.filename)
        check_wheel(path, w)               # and every use checks again
        paths.append(path)
    return paths


def unpack_wheel(path, wheel, dest):
    """Unpack a checked wheel's packages into dest; [(local file, board path, compile?)] under lib/."""
    items = []
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            top = name.split("/")[0]
            if name.endswith("/") or top.endswith(".dist-info") or top.endswith(".data") or name in wheel.skip:
                continue
            if name.startswith("/") or ".." in name.split("/") or "\\" in name:
                raise RuntimeError("%s: unsafe file name in the wheel: %r" % (wheel.filename, name))
            local = os.path.join(dest, *name.split("/"))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with z.open(name) as src, open(local, "wb") as out:
                shutil.copyfileobj(src, out)
            if name.endswith(".py"):
                items.append((local, "lib/" + name[:-3] + ".mpy", True))
            else:
                items.append((local, "lib/" + name, False))          # the ToF firmware blob and its data
    return items


def dependency_items(sensor, work_dir, cache=None):
    """The sensor's dependencies, ready to compile and copy: [(local file, board path, compile?)]."""
    wheels = [WHEELS[name] for name in SENSOR_DEPS[sensor]]
    items = []
    for path, wheel in zip(fetch_wheels(wheels, cache), wheels):
        items += unpack_wheel(path, wheel, os.path.join(work_dir, wheel.filename))
    return items


def dependency_roots(items):
    """What the dependencies own on the board: lib/<package> and any lib/<package>.py/.mpy beside it."""
    stems = sorted({t.split("/")[1].split(".")[0] for _, t, _ in items})
    return [path for stem in stems for path in ("lib/" + stem, "lib/%s.py" % stem, "lib/%s.mpy" % stem)]


# Remove an earlier install first: a leftover source file (lib/qwiic_i2c/__init__.py
# from mip) would be imported instead of the .mpy beside it.
_REMOVE_SCRIPT = """
import os
def rm(p):
    try:
        mode = os.stat(p)[0]
    except OSError:
        return
    if mode & 0x4000:
        for e in list(os.ilistdir(p)):
            rm(p + "/" + e[0])
        os.rmdir(p)
    else:
        os.remove(p)
for p in %r:
    rm(p)
"""


def compile_all(items, arch, out_dir):
    """Compile with mpy-cross; return [(file to copy, board path)]."""
    files = []
    for source, target, compile_it in items:
        if not compile_it:
            files.append((source, target))
            continue
        out = os.path.join(out_dir, target)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        # -s: the board path is the name tracebacks show on the board, and the
        # .mpy no longer depends on where the repository is checked out (a
        # longer host path made every module, and the heap it takes, larger)
        proc = subprocess.run([sys.executable, "-m", "mpy_cross", "-march=" + arch, "-s", target, "-o", out, source],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("mpy-cross failed for %s: %s" % (source, proc.stderr.strip()))
        files.append((out, target))
    return files


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


_HASH_SCRIPT = """
import hashlib, json
out = {}
for p in %r:
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            while True:
                b = f.read(512)
                if not b:
                    break
                h.update(b)
        out[p] = "".join("%%02x" %% x for x in h.digest())
    except OSError:
        out[p] = None
print(json.dumps(out))
"""


def feed_code(board):
    """Re-time (or start) the watchdog at the board's longest period and feed it."""
    return "import machine\nmachine.WDT(timeout=%d).feed()" % BOARDS[board]["wdt_max_ms"]


_PREFLIGHT_SCRIPT = """
import gc, json, os
gc.collect()
st = os.statvfs('.')
sizes = {}
for p in %r:
    try:
        sizes[p] = os.stat(p)[6]
    except OSError:
        pass
free = gc.mem_free()
try:
    import esp32   # the ESP32 heap grows into the IDF's on demand (MICROPY_GC_SPLIT_HEAP_AUTO)
    free += sum(h[1] for h in esp32.idf_heap_info(esp32.HEAP_DATA))
except ImportError:
    pass
print(json.dumps({"bsize": st[0], "bavail": st[4], "heap_free": free, "sizes": sizes}))
"""


def clusters(size, bsize):
    return (size + bsize - 1) // bsize * bsize


def preflight(port, board, files, sensor):
    """Check room and RAM on the board before copying; return a message if
    the firmware cannot fit, else None. Soft-resets the board (a clean heap)."""
    targets = [t for _, t in files]
    proc = subprocess.run(mpremote_cmd() + ["connect", port, "exec", feed_code(board), "+", "soft-reset", "+",
                                            "exec", feed_code(board) + "\n" + _PREFLIGHT_SCRIPT % targets],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return "the board did not answer: %s" % (proc.stderr or proc.stdout).strip()[-500:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    bsize = info["bsize"] or 512
    free = info["bavail"] * bsize + sum(clusters(n, bsize) for n in info["sizes"].values())
    need = sum(clusters(os.path.getsize(s), bsize) for s, _ in files) + 2 * bsize   # + room for the queue's first files
    if need > free:
        return ("the firmware needs %d bytes of the board's filesystem and %d are free (%d-byte blocks): "
                "it cannot fit; use a board with a larger filesystem (docs/firmware.md, board table)"
                % (need, free, bsize))
    heap = NODE_HEAP_BYTES[sensor]
    if info["heap_free"] < heap:
        return ("the board has %d bytes of free heap and the %s node needs about %d: it would run out of "
                "memory; use a board with more RAM (docs/firmware.md, board table)" % (info["heap_free"], sensor, heap))
    return None


def board_hashes(port, paths, board=None):
    code = _HASH_SCRIPT % list(paths)
    if board:
        code = feed_code(board) + "\n" + code
    proc = subprocess.run(mpremote_cmd() + ["connect", port, "exec", code],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError("reading hashes from the board failed: %s" % (proc.stderr or proc.stdout).strip())
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _label(source, wheels_dir):
    if source.startswith(wheels_dir + os.sep):
        return os.path.relpath(source, wheels_dir).replace(os.sep, "/")     # <wheel>/<file in the wheel>
    return os.path.relpath(source, REPO_ROOT) if source.startswith(REPO_ROOT) else source


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse deploy", description=__doc__.splitlines()[0])
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--board", choices=sorted(BOARDS), default="esp32_devkitc")
    p.add_argument("--config", help="the node's vistelse.json from `vistelse provision`")
    p.add_argument("--sensor", choices=sorted(SENSOR_DEPS),
                   help="whose dependencies to install (default: the node file's \"sensor\", else ld2450)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan, change nothing on the board (missing wheels are still fetched to the cache)")
    p.add_argument("--no-deps", action="store_true",
                   help="skip installing dependencies: the sensor's wheels and `mpremote mip install` "
                        "(no network, or they are on the board already)")
    p.add_argument("--frozen", action="store_true",
                   help="the board's MicroPython image has firmware/manifest.py frozen in: copy only boot.py, "
                        "main.py, the board file, the node file and the sensor's dependencies")
    args = p.parse_args(argv)
    board = BOARDS[args.board]
    if frozen_required(args.board) and not args.frozen:
        sys.stderr.write("vistelse deploy: warning: on %s the node needs its modules frozen into the MicroPython "
                         "image (docs/firmware.md, \"Freezing the firmware\"), then --frozen; loaded from the "
                         "filesystem they leave it too little heap\n" % args.board)
    sensor = args.sensor
    if args.config:
        if not os.path.exists(args.config):
            p.error("no such file: %s" % args.config)
        try:
            with open(args.config) as f:
                node_sensor = json.load(f).get("sensor")
        except (ValueError, AttributeError) as exc:
            p.error("%s is not a node file: %s" % (args.config, exc))
        if node_sensor is not None:
            if node_sensor not in SENSOR_DEPS:
                p.error("%s: unknown sensor %r (known: %s)" % (args.config, node_sensor, ", ".join(sorted(SENSOR_DEPS))))
            if sensor and sensor != node_sensor:
                p.error("--sensor %s, but %s says %r" % (sensor, args.config, node_sensor))
            sensor = node_sensor
    sensor = sensor or "ld2450"

    with tempfile.TemporaryDirectory(prefix="vistelse-deploy-") as build:
        wheels_dir = os.path.join(build, "wheels")
        items = plan(args.board, args.frozen)
        deps = []
        if SENSOR_DEPS[sensor] and not args.no_deps:
            try:
                deps = dependency_items(sensor, wheels_dir)
            except (RuntimeError, OSError, zipfile.BadZipFile, subprocess.TimeoutExpired) as exc:
                sys.stderr.write("vistelse deploy: the %s dependencies: %s\n" % (sensor, exc))
                return 1
        items += deps
        if args.config:
            items.append((os.path.abspath(args.config), "vistelse.json", False))

        print("deploy to %s (%s, mpy-cross -march=%s, sensor %s)" % (args.port, args.board, board["arch"], sensor))
        for source, target, compile_it in items:
            print("  %-48s <- %s%s" % (":" + target, _label(source, wheels_dir), "  (compiled)" if compile_it else ""))
        if deps:
            for name in SENSOR_DEPS[sensor]:
                if WHEELS[name].skip:
                    print("  (not copied from %s: %s, not MicroPython backends)"
                          % (WHEELS[name].filename, ", ".join(WHEELS[name].skip)))
        if SENSOR_DEPS[sensor] and args.no_deps:
            print("  (--no-deps: not installing %s)" % ", ".join(WHEELS[n].requirement for n in SENSOR_DEPS[sensor]))
        for package in board["mip"]:
            print("  mip install %s" % package)
        if args.dry_run:
            print("dry run: nothing changed")
            return 0

        try:
            files = compile_all(items, board["arch"], os.path.join(build, "out"))
        except RuntimeError as exc:
            sys.stderr.write("vistelse deploy: %s\n" % exc)
            return 1
        problem = preflight(args.port, args.board, files, sensor)
        if problem:
            sys.stderr.write("vistelse deploy: nothing copied: %s\n" % problem)
            return 1
        feed = feed_code(args.board)
        if board["mip"] and not args.no_deps:
            for package in board["mip"]:
                proc = subprocess.run(mpremote_cmd() + ["connect", args.port, "exec", feed, "+", "mip", "install",
                                                        package])
                if proc.returncode != 0:
                    sys.stderr.write("vistelse deploy: mip install %s failed\n" % package)
                    return 1
        # One mpremote session: remove an earlier install of the dependencies,
        # make the folders, then copy every file.
        dirs = sorted({os.path.dirname(t) for _, t in files if os.path.dirname(t)}, key=lambda d: d.count("/"))
        cmd = mpremote_cmd() + ["connect", args.port]
        if deps:
            cmd += ["exec", _REMOVE_SCRIPT % dependency_roots(deps), "+"]
        cmd += ["exec", feed, "+"]
        for d in dirs:
            cmd += ["exec", "import os\ntry:\n    os.mkdir(%r)\nexcept OSError:\n    pass" % d, "+"]
        for source, target in files:
            cmd += ["exec", feed, "+", "fs", "cp", source, ":" + target, "+"]
        proc = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            sys.stderr.write("vistelse deploy: copying failed: %s\n" % (proc.stderr or proc.stdout).strip()[-2000:])
            return 1
        try:
            on_board = board_hashes(args.port, [t for _, t in files], args.board)
        except RuntimeError as exc:
            sys.stderr.write("vistelse deploy: %s\n" % exc)
            return 1
        bad = [t for s, t in files if on_board.get(t) != sha256(s)]
        if bad:
            sys.stderr.write("vistelse deploy: these files differ on the board: %s\n" % ", ".join(bad))
            return 1
        subprocess.run(mpremote_cmd() + ["connect", args.port, "reset"], capture_output=True, timeout=60)
    print("%d files copied and verified by SHA-256; the board restarts with them" % len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
