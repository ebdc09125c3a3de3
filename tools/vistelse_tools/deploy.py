"""`vistelse deploy`: put the node firmware on a board with mpremote.

    vistelse deploy --port /dev/ttyUSB0 --board esp32_devkitc --config node/vistelse.json
    vistelse deploy --port /dev/ttyACM0 --board nucleo_f446re --dry-run

1. compiles every firmware module and the node codec with mpy-cross for the
   board's architecture (boot.py, main.py and the board file stay source,
   so an installer can read and edit them on the board);
2. installs the board's dependencies with `mpremote mip install`;
3. copies everything, and the node's configuration file from
   `vistelse provision`, with `mpremote fs cp`;
4. reads back the SHA-256 of every file on the board and compares.

Paths on the board are relative to its flash (`:main.py`, `:lib/...`), so
the same layout works on an ESP32 (flash at /) and an STM32 (flash at /flash).
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

from . import REPO_ROOT

FIRMWARE = os.path.join(REPO_ROOT, "firmware")
NODE_CODEC = os.path.join(REPO_ROOT, "codecs", "micropython", "vistelse_mcodec.py")

# mpy-cross architecture and mip packages per board. The VL53L5CX driver is
# installed from its package index on the board (docs/firmware.md).
BOARDS = {
    "esp32_devkitc": {"arch": "xtensawin", "mip": []},
    "nucleo_f446re": {"arch": "armv7emsp", "mip": []},
}
KEEP_SOURCE = ("boot.py", "main.py")


def mpremote_cmd():
    exe = os.path.join(os.path.dirname(sys.executable), "mpremote")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "mpremote"]


def plan(board):
    """[(local source, board path, compile?)] for the board."""
    items = []
    for directory, dirs, files in os.walk(FIRMWARE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel_dir = os.path.relpath(directory, FIRMWARE)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            rel = name if rel_dir == "." else os.path.join(rel_dir, name).replace(os.sep, "/")
            if rel.startswith("boards/"):
                if rel not in ("boards/%s.py" % board, "boards/__init__.py"):
                    continue           # only this board's map goes on the board
                items.append((os.path.join(directory, name), rel, False))
            elif rel in KEEP_SOURCE:
                items.append((os.path.join(directory, name), rel, False))
            else:
                items.append((os.path.join(directory, name), rel[:-3] + ".mpy", True))
    items.append((NODE_CODEC, "lib/vistelse_mcodec.mpy", True))
    return items


def compile_all(items, arch, out_dir):
    """Compile with mpy-cross; return [(file to copy, board path)]."""
    files = []
    for source, target, compile_it in items:
        if not compile_it:
            files.append((source, target))
            continue
        out = os.path.join(out_dir, target)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        proc = subprocess.run([sys.executable, "-m", "mpy_cross", "-march=" + arch, "-o", out, source],
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


def board_hashes(port, paths):
    proc = subprocess.run(mpremote_cmd() + ["connect", port, "exec", _HASH_SCRIPT % list(paths)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError("reading hashes from the board failed: %s" % (proc.stderr or proc.stdout).strip())
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse deploy", description=__doc__.splitlines()[0])
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--board", choices=sorted(BOARDS), default="esp32_devkitc")
    p.add_argument("--config", help="the node's vistelse.json from `vistelse provision`")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--no-deps", action="store_true", help="skip `mpremote mip install` (no network at the board)")
    args = p.parse_args(argv)
    board = BOARDS[args.board]
    items = plan(args.board)
    if args.config:
        if not os.path.exists(args.config):
            p.error("no such file: %s" % args.config)
        items.append((os.path.abspath(args.config), "vistelse.json", False))

    print("deploy to %s (%s, mpy-cross -march=%s)" % (args.port, args.board, board["arch"]))
    for source, target, compile_it in items:
        print("  %-40s <- %s%s" % (":" + target, os.path.relpath(source, REPO_ROOT) if source.startswith(REPO_ROOT)
                                    else source, "  (compiled)" if compile_it else ""))
    for package in board["mip"]:
        print("  mip install %s" % package)
    if args.dry_run:
        print("dry run: nothing changed")
        return 0

    with tempfile.TemporaryDirectory(prefix="vistelse-deploy-") as build:
        try:
            files = compile_all(items, board["arch"], build)
        except RuntimeError as exc:
            sys.stderr.write("vistelse deploy: %s\n" % exc)
            return 1
        if board["mip"] and not args.no_deps:
            for package in board["mip"]:
                proc = subprocess.run(mpremote_cmd() + ["connect", args.port, "mip", "install", package])
                if proc.returncode != 0:
                    sys.stderr.write("vistelse deploy: mip install %s failed\n" % package)
                    return 1
        # One mpremote session: make the folders, then copy every file.
        dirs = sorted({os.path.dirname(t) for _, t in files if os.path.dirname(t)}, key=lambda d: d.count("/"))
        cmd = mpremote_cmd() + ["connect", args.port]
        for d in dirs:
            cmd += ["exec", "import os\ntry:\n    os.mkdir(%r)\nexcept OSError:\n    pass" % d, "+"]
        for source, target in files:
            cmd += ["fs", "cp", source, ":" + target, "+"]
        proc = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            sys.stderr.write("vistelse deploy: copying failed: %s\n" % (proc.stderr or proc.stdout).strip()[-2000:])
            return 1
        try:
            on_board = board_hashes(args.port, [t for _, t in files])
        except RuntimeError as exc:
            sys.stderr.write("vistelse deploy: %s\n" % exc)
            return 1
        bad = [t for s, t in files if on_board.get(t) != sha256(s)]
        if bad:
            sys.stderr.write("vistelse deploy: these files differ on the board: %s\n" % ", ".join(bad))
            return 1
    print("%d files copied and verified by SHA-256" % len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
