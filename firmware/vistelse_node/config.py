# The node's measurement configuration: what it starts with, what a
# downlink may change, and what it keeps across resets.
#
# The factory configuration comes from the node file (`vistelse.json`,
# written by `vistelse provision`, version 0). A configuration downlink
# (fPort 2, decoded by vistelse_mcodec) is checked here as a whole before
# anything changes: one bad field rejects the downlink, the node keeps
# counting with what it had and sets health flag config_rejected in the
# next uplink. An accepted configuration is written to flash (two slots,
# flashfs.DualSlot: a power cut mid-write leaves the previous one in force)
# before it is used.
#
# Zones and lines keep their index: zone 2 in a downlink is zone 2 in
# every report. Indices must stay contiguous from 0 (deleting zone 1 while
# zone 2 exists is rejected) so that a report's position is the index.
import json

from vistelse_node import flashfs
from vistelse_node.release import K_MAX, K_MIN

MAX_ZONES = 8
MAX_LINES = 4
MIN_SEGMENT_MM = 300          # shorter than a stride: no one can be seen crossing it
MIN_AREA_MM2 = 250000         # 0.5 m x 0.5 m: room for one person to stand in
SENSOR_MODES = {"ld2450": ("radar_multi", "radar_single"), "vl53l5cx": ("tof_8x8", "tof_4x4")}
DEFAULTS = {"config_version": 0, "interval_s": 300, "zones": [], "lines": [], "min_count": 5,
            "sensor_mode": None, "still_hold_s": 300, "orientation": None}
# A ToF sensor's orientation on its mount (sensors/vl53l5cx.py zone_map):
# from the node file's mount ("rotate", "mirror": `vistelse provision`),
# or a downlink after a walk test (docs/evaluation.md). None for the radar.


class ConfigError(ValueError):
    pass


def _area2(poly):
    """Twice the signed area of a polygon [[x, y], ...] (shoelace)."""
    s = 0
    n = len(poly)
    for i in range(n):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % n]
        s += x0 * y1 - x1 * y0
    return s


def _segments_cross(p, q, r, s):
    def orient(a, b, c):
        v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return (v > 0) - (v < 0)
    return orient(p, q, r) * orient(p, q, s) < 0 and orient(r, s, p) * orient(r, s, q) < 0


def check_polygon(poly, name):
    if len(poly) < 3:
        raise ConfigError("%s: a polygon needs at least 3 vertices" % name)
    n = len(poly)
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue            # neighbours through the closing edge
            if _segments_cross(poly[i], poly[(i + 1) % n], poly[j], poly[(j + 1) % n]):
                raise ConfigError("%s: edges %d and %d cross (the polygon is not simple)" % (name, i, j))
    if abs(_area2(poly)) < 2 * MIN_AREA_MM2:
        raise ConfigError("%s: area below %d mm2 (0.5 m x 0.5 m): no one fits in it" % (name, MIN_AREA_MM2))


def check_segment(a, b, name):
    dx, dy = b[0] - a[0], b[1] - a[1]
    if dx * dx + dy * dy < MIN_SEGMENT_MM * MIN_SEGMENT_MM:
        raise ConfigError("%s: shorter than %d mm" % (name, MIN_SEGMENT_MM))


def _apply_edits(current, edits, limit, what, make):
    slots = list(current) + [None] * (limit - len(current))
    for e in edits:
        i = e["index"]
        if i >= limit:
            raise ConfigError("%s %d: at most %d %ss" % (what, i, limit, what))
        slots[i] = None if e.get("delete") else make(e, "%s %d" % (what, i))
    n = 0
    while n < limit and slots[n] is not None:
        n += 1
    for i in range(n, limit):
        if slots[i] is not None:
            raise ConfigError("%s %d is set but %s %d is not: indices must be contiguous from 0"
                              % (what, i, what, n))
    return slots[:n]


def _zone(e, name):
    poly = [list(p) for p in e["polygon_mm"]]
    check_polygon(poly, name)
    return poly


def _line(e, name):
    a, b = list(e["a_mm"]), list(e["b_mm"])
    check_segment(a, b, name)
    return [a, b]


def merged(current, sensor, downlink):
    """The configuration a decoded downlink asks for, checked; ConfigError if not."""
    new = dict(current)
    version = downlink["config_version"]
    if version == current["config_version"]:
        raise ConfigError("config_version %d is already in force" % version)
    new["config_version"] = version
    if "interval_s" in downlink:
        new["interval_s"] = downlink["interval_s"]
    if "zones" in downlink:
        new["zones"] = _apply_edits(current["zones"], downlink["zones"], MAX_ZONES, "zone", _zone)
    if "lines" in downlink:
        new["lines"] = _apply_edits(current["lines"], downlink["lines"], MAX_LINES, "line", _line)
    if "min_count" in downlink:
        k = downlink["min_count"]
        if not K_MIN <= k <= K_MAX:
            # the privacy guarantee's k (docs/privacy.md): a downlink cannot weaken it below K_MIN
            raise ConfigError("min_count %d: the release stage needs %d to %d people per record" % (k, K_MIN, K_MAX))
        new["min_count"] = k
    if "sensor_mode" in downlink:
        mode = downlink["sensor_mode"]
        if mode not in SENSOR_MODES[sensor]:
            raise ConfigError("sensor_mode %s does not fit this node's sensor (%s)" % (mode, sensor))
        new["sensor_mode"] = mode
    if "still_hold_s" in downlink:
        new["still_hold_s"] = downlink["still_hold_s"]
    if "orientation" in downlink:
        if sensor != "vl53l5cx":
            raise ConfigError("orientation is a ToF sensor's; this node's sensor is %s" % sensor)
        o = downlink["orientation"]
        new["orientation"] = {"rotate": o["rotate"] % 4, "mirror": bool(o["mirror"])}
    if not new["zones"] and not new["lines"]:
        raise ConfigError("no zone and no line left: the node would measure nothing")
    return new


def factory(node_file):
    """The configuration in the node file, checked like a downlink."""
    cfg = dict(DEFAULTS)
    given = node_file.get("config") or {}
    for k in DEFAULTS:
        if k in given:
            cfg[k] = given[k]
    sensor = node_file["sensor"]
    if sensor not in SENSOR_MODES:
        raise ConfigError("sensor must be ld2450 or vl53l5cx, not %r" % (sensor,))
    if not 60 <= cfg["interval_s"] <= 86400:
        raise ConfigError("interval_s %r: 60 to 86400 seconds" % (cfg["interval_s"],))
    if len(cfg["zones"]) > MAX_ZONES or len(cfg["lines"]) > MAX_LINES:
        raise ConfigError("at most %d zones and %d lines" % (MAX_ZONES, MAX_LINES))
    for i in range(len(cfg["zones"])):
        check_polygon(cfg["zones"][i], "zone %d" % i)
    for i in range(len(cfg["lines"])):
        check_segment(cfg["lines"][i][0], cfg["lines"][i][1], "line %d" % i)
    if cfg["sensor_mode"] is None:
        cfg["sensor_mode"] = SENSOR_MODES[sensor][0]
    if sensor == "vl53l5cx" and cfg["orientation"] is None:
        mount = node_file.get("mount") or {}
        cfg["orientation"] = {"rotate": mount.get("rotate", 0) % 4, "mirror": bool(mount.get("mirror", False))}
    return cfg


class ConfigStore:
    """The configuration in force, kept on flash."""

    def __init__(self, fs, node_file):
        self.sensor = node_file["sensor"]
        self.slot = flashfs.DualSlot(fs, "config")
        self.current = factory(node_file)
        saved = self.slot.load()
        if saved:
            try:
                cfg = json.loads(saved)
                if cfg.get("sensor") == self.sensor:
                    del cfg["sensor"]
                    for k in DEFAULTS:
                        if k not in cfg:          # saved by a firmware without the field
                            cfg[k] = self.current[k]
                    self.current = cfg
            except ValueError:
                pass                    # unreadable: the factory configuration stands

    def apply(self, downlink):
        """Check, persist and return the new configuration (ConfigError: nothing changed)."""
        new = merged(self.current, self.sensor, downlink)
        doc = dict(new)
        doc["sensor"] = self.sensor
        self.slot.save(json.dumps(doc).encode())
        self.current = new
        return new
