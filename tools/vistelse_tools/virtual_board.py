"""A virtual MicroPython board on a pseudo-terminal, for tests without hardware.

    with VirtualBoard() as board:
        subprocess.run(["mpremote", "connect", board.port, "exec", "print(1 + 1)"])

Behind the pty runs the official MicroPython WebAssembly build (one
interpreter in a Node process, see virtual_board.mjs) and, in front of it,
the USB REPL protocol as a board speaks it: the friendly REPL, the raw REPL
(Ctrl-A), raw-paste mode with flow control (Ctrl-E A Ctrl-A), soft reset
(Ctrl-D) and interrupt (Ctrl-C). So `mpremote`, and `vistelse deploy` which
drives it, work on the virtual board unchanged.

The filesystem is the board's flash: it survives soft resets, `machine.reset()`
and `board.power_cycle()`. The board's UARTs are pseudo-terminals too
(`uarts={1: "/dev/pts/N"}`): the firmware's `machine.UART(1)` talks to
whatever holds the other end, e.g. a modem emulator.

The watchdog is enforced: machine.WDT, once started, cannot be stopped
(Ctrl-C and soft resets leave it running, as on the ESP32 and STM32
ports); not fed within its timeout, the board resets with reset cause
WDT_RESET and its console shows the banner (`watchdog_resets` counts them).
`heap_bytes` makes the board one with that much heap: the runtime starts
with it (the WebAssembly build's heapsize) and gc.mem_free() reports what
is left of it (the npm build grows its heap on demand, so it is not a hard
cap; tools/vistelse_tools/board_memory.py measures the node's need);
`flash_bytes` makes os.statvfs report a filesystem of that size. Both are
what `vistelse deploy` checks before copying.

What it is not: it runs at the host's speed, its floats are double, and
it does not start main.py by itself after a reset
(a WebAssembly interpreter running the node's endless loop could not be
interrupted by Ctrl-C); tests start the node's loop for a bounded time.
"""
import base64
import json
import os
import struct
import subprocess
import threading
import tty

from . import REPO_ROOT
from .micropython import check_runtime

HERE = os.path.dirname(os.path.abspath(__file__))
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
BANNER = (b"MicroPython v1.29.0 on 2026-01-01; Vistelse virtual board (WebAssembly)\r\n"
          b"Type \"help()\" for more information.\r\n")
PASTE_WINDOW = 128


class VirtualBoard:
    def __init__(self, uarts=None, heap_bytes=0, flash_bytes=0):
        check_runtime()
        self.heap_bytes = heap_bytes
        self.flash_bytes = flash_bytes
        self.watchdog_resets = 0
        self.uarts = {str(k): v for k, v in (uarts or {}).items()}
        self.master = self.port = self._slave = None
        self.node = None
        self._thread = None
        self._lock = threading.Lock()
        self.mode = "friendly"
        self._buffer = bytearray()
        self._line = bytearray()
        self._paste_count = 0
        self._escape = b""
        self.log = []             # (code, stdout, stderr) of every execution, for tests

    # --- lifecycle -------------------------------------------------------------

    def start(self):
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)   # a USB CDC port: no line discipline in the way
        self.port = os.ttyname(self._slave)
        self.node = subprocess.Popen(
            ["node", os.path.join(HERE, "virtual_board.mjs"), os.path.join(HERE, "vboard_machine.py"),
             str(self.heap_bytes), str(self.flash_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO_ROOT, text=True, bufsize=1)
        if self.uarts:
            self._request({"op": "uarts", "map": self.uarts})
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="virtual-board", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._running = False
        if self.node:
            self.node.stdin.close()
            self.node.terminate()
            self.node.wait(5)
            self.node = None
        for fd in (self.master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self._slave = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def power_cycle(self):
        """Cut the power: a new interpreter, the same flash, reset cause power-on."""
        with self._lock:
            self._request({"op": "reset", "cause": 1})
            self.mode = "friendly"
            self._buffer.clear()

    def load(self, files):
        """Copy [(host path, board path)] onto the board's flash, as `mpremote cp`
        would (a folder: its .py, .mpy and .json files)."""
        with self._lock:
            self._request({"op": "files", "files": [list(f) for f in files]})

    # --- MicroPython --------------------------------------------------------------

    def _request(self, req):
        self.node.stdin.write(json.dumps(req) + "\n")
        self.node.stdin.flush()
        line = self.node.stdout.readline()
        if not line:
            raise RuntimeError("the virtual board's MicroPython process died")
        return json.loads(line)

    def execute(self, code):
        """Run code on the board; (stdout bytes, stderr text, reset happened)."""
        answer = self._request({"op": "exec", "code": code})
        if answer.get("watchdog"):
            self.watchdog_resets += 1
        out = base64.b64decode(answer["out"]).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        err = answer["err"].replace("\r\n", "\n").replace("\n", "\r\n")
        self.log.append((code, out, err))
        return out, err, answer["reset"]

    # --- the USB REPL ------------------------------------------------------------------

    def _write(self, data):
        if self.master is not None:
            os.write(self.master, data)

    def _serve(self):
        while self._running:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                try:
                    self._poll_watchdog()
                    for byte in data:
                        self._byte(byte)
                except (RuntimeError, OSError, ValueError, AttributeError):
                    if not self._running:
                        return            # the board is being stopped under a running command
                    raise

    def _poll_watchdog(self):
        """A watchdog reset while the REPL was idle: the console shows the banner."""
        if self._request({"op": "poll"})["reset"]:
            self.watchdog_resets += 1
            self.mode = "friendly"
            self._buffer.clear()
            self._write(BANNER + b">>> ")

    def _run_buffer(self):
        code = self._buffer.decode("utf-8", "replace")
        self._buffer.clear()
        out, err, reset = self.execute(code)
        self._write(out + b"\x04" + err.encode() + b"\x04")
        if reset:
            # machine.reset(): the board restarts; its USB console shows the banner
            self.mode = "friendly"
            self._write(BANNER + b">>> ")
        else:
            self._write(b">")

    def _soft_reset(self):
        self._request({"op": "reset", "cause": 5})

    def _byte(self, b):
        c = bytes([b])
        if self.mode == "paste":
            if c == b"\x04":
                self.mode = "raw"
                self._write(b"\x04")          # end of data acknowledged
                self._run_buffer()
                return
            self._buffer += c
            self._paste_count += 1
            if self._paste_count % PASTE_WINDOW == 0:
                self._write(b"\x01")          # room for another window
            return
        if self._escape:
            self._escape += c
            if len(self._escape) == 3:
                if self._escape == b"\x05A\x01":
                    self.mode = "paste"
                    self._buffer.clear()
                    self._paste_count = 0
                    self._write(b"R\x01" + struct.pack("<H", PASTE_WINDOW))
                self._escape = b""
            return
        if self.mode == "raw":
            if c == b"\x01":
                self._buffer.clear()
                self._write(b"\r\n" + RAW_PROMPT)
            elif c == b"\x02":
                self.mode = "friendly"
                self._buffer.clear()
                self._write(b"\r\n" + BANNER + b">>> ")
            elif c == b"\x03":
                self._buffer.clear()
            elif c == b"\x04":
                if self._buffer.strip():
                    self._write(b"OK")
                    self._run_buffer()
                else:
                    self._buffer.clear()
                    self._write(b"OK\r\nMPY: soft reboot\r\n")
                    self._soft_reset()
                    self._write(RAW_PROMPT)
            elif c == b"\x05" and not self._buffer.strip():
                self._escape = c
            else:
                self._buffer += c
            return
        # friendly REPL
        if c == b"\x01":
            self.mode = "raw"
            self._buffer.clear()
            self._write(b"\r\n" + RAW_PROMPT)
        elif c == b"\x03":
            self._line.clear()
            self._write(b"\r\n>>> ")
        elif c == b"\x04":
            self._line.clear()
            self._write(b"\r\nMPY: soft reboot\r\n")
            self._soft_reset()
            self._write(BANNER + b">>> ")
        elif c == b"\x02":
            self._write(b"\r\n" + BANNER + b">>> ")
        elif c in (b"\r", b"\n"):
            line = self._line.decode("utf-8", "replace")
            self._line.clear()
            self._write(b"\r\n")
            if line.strip():
                try:
                    out, err, reset = self.execute(line)
                except RuntimeError as exc:
                    out, err, reset = b"", str(exc) + "\r\n", False
                self._write(out + err.encode())
                if reset:
                    self._write(BANNER)
            self._write(b">>> ")
        elif c in (b"\x7f", b"\x08"):
            if self._line:
                self._line = self._line[:-1]
                self._write(b"\x08 \x08")
        else:
            self._line += c
            self._write(c)


def main(argv=None):
    """`python -m vistelse_tools.virtual_board`: run one until Ctrl-C, print its port."""
    import argparse
    import time
    p = argparse.ArgumentParser(description="Run a virtual MicroPython board on a pseudo-terminal.")
    p.add_argument("--uart", action="append", default=[], metavar="ID=PATH",
                   help="connect the board's UART ID to a pseudo-terminal PATH (repeatable)")
    args = p.parse_args(argv)
    uarts = dict(u.split("=", 1) for u in args.uart)
    with VirtualBoard(uarts) as board:
        print("virtual board on %s (try: mpremote connect %s)" % (board.port, board.port), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
