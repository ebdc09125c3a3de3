"""`vistelse record`: record a node's sensor frames over USB.

    vistelse record --port /dev/ttyUSB0 --out stortorget.rec.jsonl.gz --minutes 60
    vistelse record --port /dev/ttyACM0 --out door.rec.jsonl --sensor vl53l5cx --site door.json

Starts the node's record mode (firmware/vistelse_node/record.py) through
the raw REPL with mpremote's serial transport, reads the lines it
streams, checks every one with the strict recording reader
(recording.check_header / check_frame) and writes the file (gzip when
FILE ends in .gz). Record mode exists only over USB; nothing here touches
the radio.

The header's site part (mount height, zones, lines, interval) comes from
--site, a JSON object with any of "mount", "zones", "lines", "interval_s"
(an earlier recording's header line, saved as a file, will do) and
--height-mm; without them it has no zones or lines, which can be added to
the header line later.

Ctrl-C stops cleanly: the board is interrupted, the lines it sent so far
are written and the file is valid. Lines that fail the check are left out
and counted.

A node in service has its watchdog running, and nothing stops it (not
Ctrl-C, not a soft reset). Record mode re-times it to WDT_MS (within
every port's range: the STM32's IWDG stops at 32.7 s) and feeds it; when
the recording ends the board is reset, so the node starts again.
"""
import argparse
import datetime
import json
import signal
import sys
import time

from .recording import RecordingError, RecordingWriter, check_header

SENSORS = ("ld2450", "vl53l5cx")
WDT_MS = 30000


class Recorder:
    """Turns the bytes the board streams into a checked recording file."""

    def __init__(self, path, sensor=None, log=None):
        self.path = path
        self.sensor = sensor
        self.log = log or sys.stderr
        self.writer = None
        self.header = None
        self.frames = 0
        self.rejected = 0
        self.first_t = self.last_t = None
        self.error = ""
        self.interrupted = False
        self._line = bytearray()

    def feed(self, data):
        for b in data:
            if b == 10:
                line = bytes(self._line)
                self._line.clear()
                self.line(line.decode("utf-8", "replace").strip())
            elif b != 4 and b != 13:        # \x04 ends the raw REPL's output
                self._line.append(b)

    def _reject(self, why):
        self.rejected += 1
        self.log.write("vistelse record: line left out: %s\n" % why)

    def line(self, text):
        if not text:
            return
        if text.startswith("#"):
            self.log.write("board: %s\n" % text[1:].strip())
            return
        if not text.startswith("{"):
            self.log.write("board: %s\n" % text)
            return
        try:
            obj = json.loads(text)
        except ValueError as exc:
            self._reject("not JSON (%s)" % exc)
            return
        if self.writer is None:
            try:
                header = check_header(obj, "header")
            except RecordingError as exc:
                raise RecordingError("the board's header is not a valid recording header: %s" % exc) from None
            if self.sensor and header["sensor"] != self.sensor:
                raise RecordingError("the board records %s, not %s" % (header["sensor"], self.sensor))
            self.header = header
            self.writer = RecordingWriter(self.path, header)
            return
        try:
            self.writer.write_frame(obj)
        except RecordingError as exc:
            self._reject(str(exc))
            return
        self.frames += 1
        self.last_t = obj["t_ms"]
        if self.first_t is None:
            self.first_t = self.last_t

    def close(self):
        if self._line:
            self.log.write("vistelse record: an incomplete last line was left out\n")
            self._line.clear()
        if self.writer:
            self.writer.close()


def board_code(sensor, minutes, site, start, max_frames, pins):
    args = ", ".join("%s=%r" % kv for kv in sorted(pins.items()) if kv[1] is not None)
    return ("import vistelse_node.record as r\n"
            "r.main(%r, minutes=%r, site=%r, start=%r, max_frames=%r, wdt_ms=%d%s)\n"
            % (sensor, minutes, site, start, max_frames, WDT_MS, (", " + args) if args else ""))


def load_site(path, height_mm):
    site = {}
    if path:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            site = json.loads(text)
        except ValueError:
            site = json.loads(text.splitlines()[0])     # a recording: its header line
        if not isinstance(site, dict):
            raise ValueError("%s: the site must be a JSON object" % path)
        site = {k: site[k] for k in ("mount", "zones", "lines", "interval_s") if k in site}
        # The board states its own resolution and field of view; the site gives the height.
        height = (site.get("mount") or {}).get("height_mm")
        site["mount"] = {"height_mm": height} if height else {}
    if height_mm:
        site.setdefault("mount", {})["height_mm"] = height_mm
    return site


def record(port, out, sensor="ld2450", minutes=None, site=None, max_frames=None, pins=None, baudrate=115200,
           idle_timeout=60, log=None):
    """Record from the board on `port` into `out`; returns the Recorder."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    log = log or sys.stderr
    start = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    code = board_code(sensor, minutes, site or {}, start, max_frames, pins or {})
    rec = Recorder(out, sensor, log)
    try:
        transport = SerialTransport(port, baudrate=baudrate)
    except TransportError as exc:
        raise OSError(str(exc)) from None
    interrupted = []

    def on_sigint(signum, frame):
        if interrupted:
            raise KeyboardInterrupt       # a second Ctrl-C: stop waiting for the board
        interrupted.append(time.monotonic())
        log.write("\nvistelse record: stopping the board (Ctrl-C again to give up waiting)\n")
        try:
            transport.serial.write(b"\x03")   # KeyboardInterrupt on the board: it ends its stream
        except Exception:
            pass

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:                    # not the main thread: Ctrl-C is the caller's
        previous = None
    error = ""
    try:
        transport.enter_raw_repl(soft_reset=True)
        transport.exec_raw_no_follow(code)
        _, err = transport.follow(timeout=idle_timeout, data_consumer=rec.feed)
        error = err.decode("utf-8", "replace").strip()
    except TransportError as exc:
        error = "the board stopped answering (%s)" % exc
    except KeyboardInterrupt:
        error = "gave up waiting for the board"
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        try:
            # the watchdog record mode fed keeps running: restart the node now
            transport.exec_raw_no_follow("import machine\nmachine.reset()")
        except Exception:
            pass
        try:
            transport.exit_raw_repl()
        except Exception:
            pass
        transport.close()
        rec.close()
    if error and not (interrupted and "KeyboardInterrupt" in error):
        rec.error = error
    else:
        rec.error = ""
    rec.interrupted = bool(interrupted)
    return rec


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse record", description=__doc__.splitlines()[0])
    p.add_argument("--port", required=True, help="the node's USB serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--out", required=True, help="FILE.rec.jsonl or FILE.rec.jsonl.gz")
    p.add_argument("--minutes", type=float, help="how long (default: until Ctrl-C)")
    p.add_argument("--sensor", choices=SENSORS, default="ld2450")
    p.add_argument("--site", help="JSON file with the site's mount, zones, lines and interval_s")
    p.add_argument("--height-mm", type=float, help="sensor height above the floor")
    p.add_argument("--uart", type=int, default=2, help="LD2450: the board's UART id (default 2)")
    p.add_argument("--tx", type=int, help="LD2450: UART TX pin")
    p.add_argument("--rx", type=int, help="LD2450: UART RX pin")
    p.add_argument("--sda", type=int, help="VL53L5CX: I2C SDA pin")
    p.add_argument("--scl", type=int, help="VL53L5CX: I2C SCL pin")
    p.add_argument("--resolution", type=int, choices=(4, 8), default=8, help="VL53L5CX zones per side")
    p.add_argument("--rate", type=int, help="VL53L5CX frames per second (default 15 at 8x8)")
    p.add_argument("--data-path", help="VL53L5CX: folder of the driver's firmware files on the board")
    p.add_argument("--i2c", type=int, help="VL53L5CX: the board's hardware I2C bus id (the board file's I2C_ID)")
    p.add_argument("--rotate", type=int, choices=(0, 1, 2, 3), default=0,
                   help="VL53L5CX: quarter turns of the sensor on its mount (as for `vistelse provision`)")
    p.add_argument("--mirror", action="store_true", help="VL53L5CX: mirrored columns (as for `vistelse provision`)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--baud", type=int, default=115200, help="USB serial baud rate (default 115200)")
    args = p.parse_args(argv)
    if not (args.out.endswith(".jsonl") or args.out.endswith(".jsonl.gz")):
        p.error("--out must end in .jsonl or .jsonl.gz")
    try:
        site = load_site(args.site, args.height_mm)
    except (OSError, ValueError) as exc:
        p.error(str(exc))
    if args.sensor == "ld2450":
        pins = {"uart": args.uart, "tx": args.tx, "rx": args.rx}
    else:
        pins = {"sda": args.sda, "scl": args.scl, "resolution": args.resolution, "rate_hz": args.rate,
                "data_path": args.data_path, "i2c": args.i2c, "rotate": args.rotate or None,
                "mirror": args.mirror or None}
    if not site.get("zones") and not site.get("lines"):
        sys.stderr.write("vistelse record: no --site: the header will have no zones or lines\n")
    try:
        rec = record(args.port, args.out, args.sensor, args.minutes, site, args.max_frames, pins, args.baud)
    except RecordingError as exc:
        sys.stderr.write("vistelse record: %s\n" % exc)
        return 1
    except OSError as exc:
        sys.stderr.write("vistelse record: cannot use %s: %s\n" % (args.port, exc))
        return 1
    span = ((rec.last_t or 0) - (rec.first_t or 0)) / 1000.0
    if rec.writer is None:
        sys.stderr.write("vistelse record: the board sent no recording%s\n"
                         % (": " + rec.error if rec.error else ""))
        return 1
    rate = (rec.frames - 1) / span if span > 0 else 0.0
    print("%s: %d frames over %.1f s (%.1f per second)%s%s" % (
        args.out, rec.frames, span, rate, ", %d lines left out" % rec.rejected if rec.rejected else "",
        ", stopped by Ctrl-C" if rec.interrupted else ""))
    if rec.error:
        sys.stderr.write("vistelse record: the board reported: %s\n" % rec.error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
