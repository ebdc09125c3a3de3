"""Serve an AT-modem emulator on a pseudo-terminal.

    python -m vistelse_tools.emulators rak3172
    python -m vistelse_tools.emulators wioe5 --dr 0 --busy-rate 0.05 --link /tmp/wioe5

prints the terminal's path; open it like a serial port (pyserial,
mpremote's virtual board UART, minicom). Every uplink is printed as a JSON
line, or handed to `on_uplink` when used as a library:

    server = PtyModem("rak3172", on_uplink=print, downlinks=netserver.next_downlink)
    server.start(); ... server.path ...; server.stop()

`speed` runs the emulator's clock faster than real time (join delays,
receive windows and duty-cycle waits shrink by that factor), for tests.
"""
import argparse
import json
import os
import select
import sys
import threading
import time
import tty

from . import rak3172, session, wioe5

DIALECTS = {"rak3172": rak3172.Rak3172, "wioe5": wioe5.WioE5}


class PtyBridge:
    """Serves an emulated device (anything with a UART's write() and read())
    on a pseudo-terminal, or on a real serial port, in a thread: what the
    other end writes goes to the device, what the device has to say comes
    back. Bytes the other end does not take in time are lost when the
    terminal's buffer is full, as on a wire."""

    def __init__(self, uart, device=None, baudrate=115200):
        self.uart = uart
        self.serial = None
        if device:
            # a hardware-in-the-loop rig: the board's UART is wired to a
            # USB-UART adapter on this host, and the emulator answers on it
            import serial
            self.serial = serial.Serial(device, baudrate, timeout=0)
            self.master, self.slave = self.serial.fileno(), None
            self.path = device
        else:
            self.master, self.slave = os.openpty()
            tty.setraw(self.slave)
            os.set_blocking(self.master, False)
            self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = None
        self.link = None

    def start(self, link=None):
        if link:
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(self.path, link)
            self.link = link
        self._thread = threading.Thread(target=self._run, name="pty-" + type(self.uart).__name__, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.005)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                if data:
                    self.uart.write(data)
            out = self.uart.read()
            if out:
                try:
                    os.write(self.master, out)
                except OSError:
                    pass

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self.serial is not None:
            self.serial.close()
        else:
            for fd in (self.master, self.slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
        if self.link and os.path.islink(self.link):
            os.remove(self.link)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class PtyModem(PtyBridge):
    """An AT-modem emulator with its simulated LoRaWAN session, served on a
    pseudo-terminal (or a serial port)."""

    def __init__(self, dialect="rak3172", speed=1.0, clock=None, style=None, device=None, **session_kw):
        if dialect not in DIALECTS:
            raise ValueError("dialect must be one of %s" % ", ".join(DIALECTS))
        t0 = time.monotonic()
        self.clock = clock or (lambda: int((time.monotonic() - t0) * 1000 * speed))
        self.session = session.Session(self.clock, **session_kw)
        cls = DIALECTS[dialect]
        self.modem = cls(self.session, style) if (style and dialect == "rak3172") else cls(self.session)
        PtyBridge.__init__(self, self.modem, device, self.modem.baudrate)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m vistelse_tools.emulators", description=__doc__.splitlines()[0])
    p.add_argument("dialect", choices=sorted(DIALECTS))
    p.add_argument("--dev-eui", default="0000000000000000")
    p.add_argument("--dr", type=int, default=5, help="EU868 data rate 0..5 (default 5)")
    p.add_argument("--join-failures", type=int, default=0, help="fail the first N joins")
    p.add_argument("--busy-rate", type=float, default=0.0)
    p.add_argument("--ack-fail-rate", type=float, default=0.0)
    p.add_argument("--mac-rate", type=float, default=0.0, help="chance that FOpts take room in the next uplink")
    p.add_argument("--speed", type=float, default=1.0, help="emulated time per real time")
    p.add_argument("--style", choices=sorted(rak3172.RUI_VERSION), help="RUI3 reply style (rak3172)")
    p.add_argument("--link", help="also make this symlink to the terminal")
    args = p.parse_args(argv)

    def printer(up):
        print(json.dumps({"dev_eui": up["dev_eui"], "fport": up["fport"], "fcnt": up["fcnt"], "dr": up["dr"],
                          "confirmed": up["confirmed"], "airtime_ms": up["airtime_us"] / 1000.0,
                          "data": up["data"].hex()}), flush=True)

    server = PtyModem(args.dialect, speed=args.speed, style=args.style, dev_eui=args.dev_eui, dr=args.dr,
                      join_failures=args.join_failures, busy_rate=args.busy_rate,
                      ack_fail_rate=args.ack_fail_rate, mac_rate=args.mac_rate, on_uplink=printer)
    server.start(args.link)
    sys.stderr.write("%s emulator on %s (%d baud)%s\n" % (args.dialect, server.path, server.modem.baudrate,
                                                          " -> " + args.link if args.link else ""))
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
