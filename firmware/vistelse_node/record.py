# Record mode: stream the sensor's own frames over the USB REPL.
#
# For validating accuracy at a site (docs/evaluation.md). It exists only
# over USB: it runs when someone with the cable calls it at the REPL, or
# when `vistelse record` on a laptop starts it through the raw REPL, and
# prints to the USB console. Nothing here can be reached by radio: this
# module imports nothing from vistelse_node.modem, the configuration
# downlink has no command for it, and the test suite checks both.
#
#   >>> import vistelse_node.record as r
#   >>> r.run(radar, minutes=10, site={"mount": {"height_mm": 2400}})
#
# Output is the recording format v1 (recordings/recording-format.md),
# one JSON object per line: the header, then one line per frame with t_ms
# counted from the start of the recording (wrap-safe ticks):
#
#   {"t_ms": 1200, "raw": "aaff0300...55cc"}                  ld2450
#   {"t_ms": 1200, "mm": [64 ints], "status": [64 ints]}       vl53l5cx
#
# Status lines for the person watching begin with "# " and are not part
# of the recording (the host tool shows them and keeps them out of the
# file). The USB console must keep up: an LD2450 line is ~85 bytes at
# 10 Hz, a VL53L5CX 8x8 line ~500 bytes at 15 Hz (~7.5 kB/s, close to what
# a 115200-baud USB-serial bridge carries).
import json
import sys
from binascii import hexlify

from vistelse_node.clock import SysClock, ticks_diff
from vistelse_node.sensors import open_sensor

SILENT_MS = 5000           # say so when the sensor sends nothing this long
REINIT_MS = 15000          # and try to set it up again after this long


def header(sensor, site=None, start="", source=""):
    """The recording header for this sensor; `site` may give mount,
    zones, lines and interval_s (the rest is the sensor's)."""
    site = site or {}
    mount = {"height_mm": 2800 if sensor.name == "vl53l5cx" else 1800}
    mount.update(site.get("mount") or {})
    if sensor.name == "vl53l5cx":
        mount["resolution"] = sensor.resolution
        mount["fov_deg"] = sensor.fov_deg
    return {"format": "vistelse-recording", "version": 1, "sensor": sensor.name,
            "rate_hz": sensor.rate_hz, "mount": mount,
            "zones": site.get("zones") or [], "lines": site.get("lines") or [],
            "interval_s": site.get("interval_s") or 300, "start": start,
            "source": source or site.get("source") or "vistelse record over USB"}


def frame_line(name, t_ms, frame):
    """One frame as its recording line (with the newline)."""
    if name == "ld2450":
        return '{"t_ms":%d,"raw":"%s"}\n' % (t_ms, hexlify(frame).decode())
    mm, status = frame
    return '{"t_ms":%d,"mm":[%s],"status":[%s]}\n' % (
        t_ms, ",".join([str(v) for v in mm]), ",".join([str(v) for v in status]))


def run(sensor, minutes=None, clock=None, site=None, start="", out=None, max_frames=None, poll_ms=5, wdt=None):
    """Stream the header and the sensor's frames to `out` (the USB console)
    for `minutes` (None: until Ctrl-C) or `max_frames`. The sensor must be
    set up already; `wdt` (a machine.WDT) is fed every turn. Returns the
    number of frames written."""
    clock = clock or SysClock()
    out = out or sys.stdout
    name = sensor.name
    limit_ms = None if minutes is None else int(minutes * 60000)
    out.write(json.dumps(header(sensor, site, start)) + "\n")
    last = clock.ticks_ms()
    elapsed = 0                        # ms since start, unwrapped
    count = 0
    silent_said = 0
    last_frame_at = 0
    last_reinit = 0
    stopped = "time"
    try:
        while True:
            if wdt is not None:
                wdt.feed()
            now = clock.ticks_ms()
            elapsed += ticks_diff(now, last)
            last = now
            if limit_ms is not None and elapsed >= limit_ms:
                break
            frame = sensor.read_frame()
            if frame is None:
                quiet = elapsed - last_frame_at
                if quiet >= SILENT_MS and quiet - silent_said >= SILENT_MS:
                    silent_said = quiet
                    out.write("# sensor silent for %d s\n" % (quiet // 1000))
                    if quiet >= REINIT_MS and elapsed - last_reinit >= REINIT_MS and hasattr(sensor, "reinit"):
                        last_reinit = elapsed
                        try:
                            sensor.reinit()
                            out.write("# sensor set up again\n")
                        except Exception as exc:
                            out.write("# sensor setup failed: %s\n" % exc)
                clock.sleep_ms(poll_ms)
                continue
            last_frame_at = elapsed
            silent_said = 0
            out.write(frame_line(name, elapsed, frame))
            count += 1
            if max_frames is not None and count >= max_frames:
                stopped = "frames"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    out.write("# record: %d frames in %d ms, stopped: %s\n" % (count, elapsed, stopped))
    return count


def main(sensor="ld2450", minutes=None, site=None, start="", max_frames=None, wdt_ms=None, **pins):
    """What `vistelse record` runs on the board: set up, then stream.

    wdt_ms: the node's watchdog may be running (nothing stops a machine.WDT,
    not Ctrl-C, not a soft reset): re-time it to wdt_ms before the sensor's
    set-up (the ToF's firmware upload takes seconds) and feed it while
    streaming. It keeps running afterwards: the host resets the board."""
    clock = SysClock()
    wdt = None
    if wdt_ms:
        import machine
        wdt = machine.WDT(timeout=wdt_ms)
    try:
        if wdt is not None and sensor == "vl53l5cx":
            pins["feed"] = wdt.feed
        dev = open_sensor(sensor, clock=clock, **pins)
    except Exception as exc:
        sys.stdout.write("# record: the sensor did not start: %s\n" % exc)
        raise
    return run(dev, minutes=minutes, clock=clock, site=site, start=start, max_frames=max_frames, wdt=wdt)
