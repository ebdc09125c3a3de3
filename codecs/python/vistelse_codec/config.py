"""Configuration downlink (fPort 2): wire form <-> decoded form.

A configuration is a partial update: only the keys present change, and
config_version names the result. Zones and lines are edited by index;
null deletes one.
"""
from .contract import FPORT_CONFIG, FPORT_RECEIPT, MAX_LINES, MAX_ZONES, SENSOR_MODES, PayloadError
from .receipt import decode_receipt, encode_receipt
from .wire import array, open_frame, seal, uint

K_VERSION, K_INTERVAL, K_ZONES, K_LINES, K_MIN_COUNT, K_MODE, K_STILL, K_ORIENT = 1, 2, 3, 4, 5, 6, 7, 8
ORIENTATION_ERROR = "orientation must be {rotate: 0..3, mirror: true or false}"
COORD_MIN, COORD_MAX = -32768, 32767


def decode_downlink(frame, fport, *, dev_eui=None, key=None):
    """Decode a configuration (fPort 2) or receipt (fPort 3) frame. With
    dev_eui and key, the tag is verified first."""
    if fport == FPORT_RECEIPT:
        return decode_receipt(frame, fport, dev_eui=dev_eui, key=key)
    return open_frame(frame, fport, FPORT_CONFIG, "configuration", dev_eui, key, _from_wire)


def encode_downlink(config, *, dev_eui, key):
    """Encode a configuration or, with a `receipt` key, a receipt (the
    decoded form, without `tag`)."""
    if isinstance(config, dict) and "receipt" in config:
        return encode_receipt(config, dev_eui=dev_eui, key=key)
    return seal(_to_wire(config), _from_wire, dev_eui, FPORT_CONFIG, key)


def _coords(values, name, lo, hi):
    array(values, name, lo, hi)
    if len(values) % 2:
        raise PayloadError("%s must have an even number of coordinates (x, y pairs)" % name)
    for value in values:
        uint(value, name + " coordinates", COORD_MIN, COORD_MAX)
    return [[values[k], values[k + 1]] for k in range(0, len(values), 2)]


def _edits(value, name, max_index):
    if type(value) is not dict or not value:
        raise PayloadError("%ss must be a non-empty map of index to definition or null" % name)
    return [(uint(index, name + " index", 0, max_index - 1), value[index]) for index in sorted(value)]


def _from_wire(wire):
    if type(wire) is not dict:
        raise PayloadError("configuration must be a map")
    if K_VERSION not in wire:
        raise PayloadError("config_version is missing")
    out = {"config_version": uint(wire[K_VERSION], "config_version", 1, 0xFFFF)}
    if K_INTERVAL in wire:
        out["interval_s"] = uint(wire[K_INTERVAL], "interval_s", 60, 86400)
    if K_ZONES in wire:
        out["zones"] = [
            {"index": i, "delete": True} if poly is None else
            {"index": i, "polygon_mm": _coords(poly, "zones[%d]" % i, 6, 16)}
            for i, poly in _edits(wire[K_ZONES], "zone", MAX_ZONES)]
    if K_LINES in wire:
        lines = []
        for i, seg in _edits(wire[K_LINES], "line", MAX_LINES):
            if seg is None:
                lines.append({"index": i, "delete": True})
            else:
                a, b = _coords(seg, "lines[%d]" % i, 4, 4)
                lines.append({"index": i, "a_mm": a, "b_mm": b})
        out["lines"] = lines
    if K_MIN_COUNT in wire:
        out["min_count"] = uint(wire[K_MIN_COUNT], "min_count", 0, 255)
    if K_MODE in wire:
        out["sensor_mode"] = SENSOR_MODES[uint(wire[K_MODE], "sensor_mode", 1, len(SENSOR_MODES))]
    if K_STILL in wire:
        out["still_hold_s"] = uint(wire[K_STILL], "still_hold_s", 0, 3600)
    if K_ORIENT in wire:
        # a ToF sensor's mount: quarter turns in bits 0-1, mirrored columns in bit 2
        code = uint(wire[K_ORIENT], "orientation", 0, 7)
        out["orientation"] = {"rotate": code & 3, "mirror": bool(code & 4)}
    return out


def _to_wire(config):
    if not isinstance(config, dict):
        raise PayloadError("configuration must be a map")
    if "config_version" not in config:
        raise PayloadError("config_version is missing")
    wire = {K_VERSION: config["config_version"]}
    if "interval_s" in config:
        wire[K_INTERVAL] = config["interval_s"]
    for key, wkey, points in (("zones", K_ZONES, "polygon_mm"), ("lines", K_LINES, None)):
        if key not in config:
            continue
        edits = {}
        for entry in config[key]:
            if not isinstance(entry, dict) or "index" not in entry:
                raise PayloadError("%s entries need an index" % key)
            if entry.get("delete"):
                edits[entry["index"]] = None
            elif points:
                edits[entry["index"]] = [c for xy in entry.get(points) or [] for c in xy]
            else:
                edits[entry["index"]] = list(entry.get("a_mm") or []) + list(entry.get("b_mm") or [])
        wire[wkey] = edits
    if "min_count" in config:
        wire[K_MIN_COUNT] = config["min_count"]
    if "sensor_mode" in config:
        codes = [c for c, name in SENSOR_MODES.items() if name == config["sensor_mode"]]
        if not codes:
            raise PayloadError("sensor_mode must be one of %s" % ", ".join(SENSOR_MODES.values()))
        wire[K_MODE] = codes[0]
    if "still_hold_s" in config:
        wire[K_STILL] = config["still_hold_s"]
    if "orientation" in config:
        o = config["orientation"]
        if (not isinstance(o, dict) or set(o) != {"rotate", "mirror"} or type(o["rotate"]) is not int
                or o["rotate"] not in (0, 1, 2, 3) or type(o["mirror"]) is not bool):
            raise PayloadError(ORIENTATION_ERROR)
        wire[K_ORIENT] = o["rotate"] + (4 if o["mirror"] else 0)
    return wire
