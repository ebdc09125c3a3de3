"""Uplink report (fPort 1): wire form <-> decoded form.

Wire form (see vistelse.cddl):
    [seq, interval_s, age_s, [battery_mv, health, config_version, reset_cause],
     totals, [[zones, lines], ...], ?{0: spans, 1: height classes}]
Validation lives in one place, _from_wire, which the encoder also runs on
what it is about to send.
"""
from .contract import (
    DWELL_EDGES_S, FPORT_REPORT, HEALTH_FLAGS, HEIGHT_EDGES_MM,
    MAX_LINES, MAX_ZONES, RESET_CAUSES, TIME_LOST_BIT, PayloadError,
)
from .wire import array, open_frame, seal, uint

U16 = 0xFFFF
U32 = 0xFFFFFFFF
_DWELL_BINS = len(DWELL_EDGES_S)
_HEIGHT_BINS = len(HEIGHT_EDGES_MM)
_EXT_SPANS = 0
_EXT_HEIGHTS = 1


def decode_uplink(frame, fport, *, dev_eui=None, key=None):
    """Decode a report frame. With dev_eui and key, the tag is verified first."""
    return open_frame(frame, fport, FPORT_REPORT, "report", dev_eui, key, _from_wire)


def encode_uplink(report, *, dev_eui, key):
    """Encode a report (the decoded form; derived fields are ignored)."""
    return seal(_to_wire(report), _from_wire, dev_eui, FPORT_REPORT, key)


def _counts(value, sizes, name, *parts):
    if type(value) is not list or len(value) not in sizes:
        raise PayloadError("%s must have %s counts" % (name % parts, " or ".join(str(n) for n in sizes)))
    item = name + "[%d]"
    for k, count in enumerate(value):
        uint(count, item, 0, U16, *parts, k)
    return value


def _from_wire(wire):
    array(wire, "report", 6, 7)
    seq = uint(wire[0], "seq", 0, U16)
    interval_s = uint(wire[1], "interval_s", 60, 86400)
    age_s = uint(wire[2], "age_s", 0, U32)
    status = array(wire[3], "status", 4, 4)
    battery_mv = uint(status[0], "status.battery_mv", 0, U16)
    health = uint(status[1], "status.health", 0, U16)
    config_version = uint(status[2], "status.config_version", 0, U16)
    reset_code = uint(status[3], "status.reset_cause", 0, 255)
    totals = array(wire[4], "totals", 0, 2 * MAX_LINES)
    if len(totals) % 2:
        raise PayloadError("totals must have 2 counts (in, out) per line")
    for k, total in enumerate(totals):
        uint(total, "totals[%d]", 0, U16, k)
    n_lines = len(totals) // 2
    records = array(wire[5], "intervals", 1)
    n = len(records)

    spans = [1] * n
    heights = None
    if len(wire) == 7:
        ext = wire[6]
        if type(ext) is not dict:
            raise PayloadError("ext must be a map")
        if _EXT_SPANS in ext:
            spans = array(ext[_EXT_SPANS], "spans (ext 0)", n, n)
            for i, span in enumerate(spans):
                uint(span, "intervals[%d].span", 1, U16, i)
        if _EXT_HEIGHTS in ext:
            heights = array(ext[_EXT_HEIGHTS], "height classes (ext 1)", n, n)
            for i, counts in enumerate(heights):
                _counts(counts, (0, _HEIGHT_BINS), "intervals[%d].height_classes", i)

    time_lost = bool(health & (1 << TIME_LOST_BIT))
    if time_lost and age_s:
        raise PayloadError("age_s must be 0 when the time_lost flag is set")

    intervals = []
    n_zones = None
    for i, record in enumerate(records):
        array(record, "intervals[%d]", 2, 2, i)
        zones = array(record[0], "intervals[%d].zones", 0, MAX_ZONES, i)
        if n_zones is None:
            n_zones = len(zones)
        elif len(zones) != n_zones:
            raise PayloadError("intervals[%d] has %d zones but intervals[0] has %d" % (i, len(zones), n_zones))
        lines = record[1]
        if type(lines) is not list or len(lines) != 2 * n_lines:
            raise PayloadError("intervals[%d].lines must have 2 counts (in, out) for each of the %d lines "
                               "in totals" % (i, n_lines))
        out_zones = []
        for j, zone in enumerate(zones):
            array(zone, "intervals[%d].zones[%d]", 4, 4, i, j)
            dwell = _counts(zone[3], (0, _DWELL_BINS), "intervals[%d].zones[%d].dwell_hist", i, j)
            out_zones.append({
                "visits": uint(zone[0], "intervals[%d].zones[%d].visits", 0, U16, i, j),
                "person_s": uint(zone[1], "intervals[%d].zones[%d].person_s", 0, U32, i, j),
                "max_occupancy": uint(zone[2], "intervals[%d].zones[%d].max_occupancy", 0, 255, i, j),
                "dwell_hist": {"edges_s": list(DWELL_EDGES_S), "counts": list(dwell)} if dwell else None,
            })
        out_lines = []
        for k in range(n_lines):
            out_lines.append({
                "in": uint(lines[2 * k], "intervals[%d].lines[%d].in", 0, U16, i, k),
                "out": uint(lines[2 * k + 1], "intervals[%d].lines[%d].out", 0, U16, i, k),
            })
        interval = {"span": spans[i], "duration_s": spans[i] * interval_s,
                    "zones": out_zones, "lines": out_lines}
        if heights is not None:
            counts = heights[i]
            interval["height_classes"] = (
                {"edges_mm": list(HEIGHT_EDGES_MM), "counts": list(counts)} if counts else None)
        intervals.append(interval)

    # Sequence numbers forward from the first; totals and ages backward
    # from the last interval, which is the one the totals belong to.
    next_seq = seq
    for interval in intervals:
        interval["seq"] = next_seq
        next_seq = (next_seq + interval["span"]) & U16
    running = list(totals)
    end_age = None if time_lost else age_s
    for interval in reversed(intervals):
        for k, line in enumerate(interval["lines"]):
            line["total_in"] = running[2 * k]
            line["total_out"] = running[2 * k + 1]
            running[2 * k] = (running[2 * k] - line["in"]) & U16
            running[2 * k + 1] = (running[2 * k + 1] - line["out"]) & U16
        interval["end_age_s"] = end_age
        if end_age is not None:
            end_age += interval["duration_s"]

    names = []
    for bit in range(16):
        if health & (1 << bit) and bit != TIME_LOST_BIT:
            names.append(HEALTH_FLAGS[bit] if bit < len(HEALTH_FLAGS) else "bit_%d" % bit)
    reset_cause = None if reset_code == 0 else RESET_CAUSES.get(reset_code, "unknown")
    return {
        "seq": seq,
        "interval_s": interval_s,
        "age_s": None if time_lost else age_s,
        "status": {"battery_mv": battery_mv, "health": names,
                   "config_version": config_version, "reset_cause": reset_cause},
        "intervals": intervals,
    }


def _field(mapping, key, name):
    if not isinstance(mapping, dict) or key not in mapping:
        raise PayloadError("%s is missing" % name)
    return mapping[key]


def _wrap(value, name):
    """Wrapping counters (seq, totals) go on the wire modulo 2^16."""
    if type(value) is not int or value < 0:
        raise PayloadError("%s must be a non-negative integer" % name)
    return value & U16


def _to_wire(report):
    status = _field(report, "status", "status")
    health = 0
    for flag in _field(status, "health", "status.health"):
        if flag in HEALTH_FLAGS:
            health |= 1 << HEALTH_FLAGS.index(flag)
        elif isinstance(flag, str) and flag.startswith("bit_") and flag[4:].isdigit() and int(flag[4:]) < 16:
            health |= 1 << int(flag[4:])
        else:
            raise PayloadError("status.health: unknown flag %r" % (flag,))
    age_s = _field(report, "age_s", "age_s")
    if age_s is None:
        health |= 1 << TIME_LOST_BIT
        age_s = 0
    cause = status.get("reset_cause")
    if cause is None:
        reset_code = 0
    else:
        codes = [code for code, label in RESET_CAUSES.items() if label == cause]
        if not codes:
            raise PayloadError("status.reset_cause: unknown cause %r" % (cause,))
        reset_code = codes[0]

    intervals = _field(report, "intervals", "intervals")
    if not isinstance(intervals, list) or not intervals:
        raise PayloadError("intervals must be an array of at least 1 items")
    records, spans, heights = [], [], []
    for i, interval in enumerate(intervals):
        name = "intervals[%d]" % i
        zones = []
        for j, zone in enumerate(_field(interval, "zones", name + ".zones")):
            zname = "%s.zones[%d]" % (name, j)
            hist = _field(zone, "dwell_hist", zname + ".dwell_hist")
            zones.append([_field(zone, "visits", zname + ".visits"),
                          _field(zone, "person_s", zname + ".person_s"),
                          _field(zone, "max_occupancy", zname + ".max_occupancy"),
                          [] if hist is None else list(_field(hist, "counts", zname + ".dwell_hist.counts"))])
        lines = []
        for k, line in enumerate(_field(interval, "lines", name + ".lines")):
            lines += [_field(line, "in", "%s.lines[%d].in" % (name, k)),
                      _field(line, "out", "%s.lines[%d].out" % (name, k))]
        records.append([zones, lines])
        spans.append(interval.get("span", 1))
        if "height_classes" in interval:
            hc = interval["height_classes"]
            heights.append([] if hc is None else list(_field(hc, "counts", name + ".height_classes.counts")))
        else:
            heights.append(None)

    totals = []
    for k, line in enumerate(intervals[-1]["lines"]):
        totals.append(_wrap(_field(line, "total_in", "lines[%d].total_in" % k), "total_in"))
        totals.append(_wrap(_field(line, "total_out", "lines[%d].total_out" % k), "total_out"))

    wire = [_wrap(_field(report, "seq", "seq"), "seq"), _field(report, "interval_s", "interval_s"), age_s,
            [_field(status, "battery_mv", "status.battery_mv"), health,
             _field(status, "config_version", "status.config_version"), reset_code],
            totals, records]
    ext = {}
    if any(span != 1 for span in spans):
        ext[_EXT_SPANS] = spans
    if any(h is not None for h in heights):
        ext[_EXT_HEIGHTS] = [[] if h is None else h for h in heights]
    if ext:
        wire.append(ext)
    return wire
