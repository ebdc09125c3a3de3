# Vistelse payload contract v1, node side (MicroPython and CPython).
#
#   encode_uplink(report, dev_eui, key) -> frame for fPort 1
#   decode_downlink(frame, fport, dev_eui, key) -> configuration dict
#
# The same contract as codecs/python (the reference codec): the report and
# configuration dicts have the same shape, frames are byte-identical, and
# every rejection carries the same reason. Written for a small heap: one
# preallocated output buffer, no floats, recursion only as deep as the
# message. hashlib.sha256 exists on every MicroPython port; hmac does not,
# so HMAC is built here.
import hashlib

FPORT_REPORT = 1
FPORT_CONFIG = 2
FPORT_RECEIPT = 3
MAX_RECEIPT_BITMAP = 32   # stored-interval bitmap of a receipt: 256 intervals
TAG_LEN = 8
MAX_FRAME = 242
DWELL_EDGES_S = (0, 5, 15, 60, 300, 900, 3600)
HEIGHT_EDGES_MM = (0, 1400)
HEALTH_FLAGS = ("sensor_silent", "sensor_blocked", "modem_trouble", "config_rejected",
                "queue_merged", "sensor_restarted", "time_lost")
TIME_LOST_BIT = 6
RESET_CAUSES = ("power_on", "hard", "watchdog", "deep_sleep", "soft")   # codes 1..5
SENSOR_MODES = ("radar_multi", "radar_single", "tof_8x8", "tof_4x4")    # codes 1..4
MAX_ZONES = 8
MAX_LINES = 4
U16 = 0xFFFF

_TRUNCATED = "truncated: the message ends inside a CBOR item"
_NOT_DETERMINISTIC = "CBOR is not in deterministic encoding (shortest form, sorted keys)"
# CBOR of ["MAC0", h'a10104', ...]: the constant head of COSE's MAC_structure
_MAC0_PREFIX = b"\x84\x64MAC0\x43\xa1\x01\x04"


class PayloadError(ValueError):
    pass


# --- authenticity tag --------------------------------------------------------

def _bstr_head(n):
    if n < 24:
        return bytes((0x40 | n,))
    if n < 256:
        return bytes((0x58, n))
    return bytes((0x59, n >> 8, n & 0xFF))


def compute_tag(message, dev_eui, fport, key):
    """HMAC-SHA-256/64 over COSE's MAC_structure (see vistelse.cddl)."""
    if len(key) != 32 or len(dev_eui) != 8:
        raise ValueError("key must be 32 bytes and dev_eui 8 bytes")
    pad = bytearray(64)
    for i in range(32):
        pad[i] = key[i] ^ 0x36
    for i in range(32, 64):
        pad[i] = 0x36
    inner = hashlib.sha256(pad)
    inner.update(_MAC0_PREFIX)
    inner.update(_bstr_head(9))
    inner.update(dev_eui)
    inner.update(bytes((fport,)))
    inner.update(_bstr_head(len(message)))
    inner.update(message)
    for i in range(64):
        pad[i] ^= 0x36 ^ 0x5C
    outer = hashlib.sha256(pad)
    outer.update(inner.digest())
    return outer.digest()[:TAG_LEN]


def _same(a, b):
    # constant time: a tag check must not tell how many bytes matched
    diff = len(a) ^ len(b)
    for i in range(min(len(a), len(b))):
        diff |= a[i] ^ b[i]
    return diff == 0


# --- encoder -----------------------------------------------------------------

class _Writer:
    """Deterministic CBOR into a preallocated buffer."""

    def __init__(self, size=MAX_FRAME):
        self.buf = bytearray(size)
        self.n = 0

    def _byte(self, b):
        if self.n >= len(self.buf):
            raise PayloadError("frame is more than %d bytes; the largest LoRaWAN payload is %d"
                               % (MAX_FRAME, MAX_FRAME))
        self.buf[self.n] = b
        self.n += 1

    def head(self, major, value):
        m = major << 5
        if value < 24:
            self._byte(m | value)
        elif value < 0x100:
            self._byte(m | 24)
            self._byte(value)
        elif value < 0x10000:
            self._byte(m | 25)
            self._byte(value >> 8)
            self._byte(value & 0xFF)
        else:
            self._byte(m | 26)
            for shift in (24, 16, 8, 0):
                self._byte((value >> shift) & 0xFF)

    def uint(self, value, lo, hi, name, a=-1, b=-1):
        # name is a format of the indexes a, b: it is built only for the
        # error, never for a good value (strings per field were most of a
        # report's garbage, and a backlog's batch encodes many candidates)
        if not _is_uint(value, lo, hi):
            raise PayloadError("%s must be an integer from %d to %d" % (_name(name, a, b), lo, hi))
        self.head(0, value)

    def array(self, n):
        self.head(4, n)

    def bytes(self):
        return bytes(self.buf[:self.n])


_writer = _Writer()


def _is_uint(value, lo, hi):
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _name(fmt, a=-1, b=-1, c=-1):
    return fmt % tuple(x for x in (a, b, c) if x >= 0)


def _counts(w, counts, name, size, a, b=-1):
    if counts is None:
        w.array(0)
        return
    if len(counts) != size:
        raise PayloadError("%s must have 0 or %d counts" % (_name(name, a, b), size))
    w.array(size)
    for k in range(size):
        if not _is_uint(counts[k], 0, U16):
            raise PayloadError("%s must be an integer from %d to %d" % (_name(name + "[%d]", a, b, k), 0, U16))
        w.head(0, counts[k])


def encode_uplink(report, dev_eui, key):
    """Frame (tag + CBOR) for fPort 1 from a report dict (the decoded form)."""
    status = report["status"]
    health = 0
    for flag in status["health"]:
        if flag in HEALTH_FLAGS:
            health |= 1 << HEALTH_FLAGS.index(flag)
        elif flag.startswith("bit_"):
            health |= 1 << int(flag[4:])
        else:
            raise PayloadError("status.health: unknown flag %r" % (flag,))
    age = report["age_s"]
    if age is None:
        health |= 1 << TIME_LOST_BIT
        age = 0
    cause = status.get("reset_cause")
    reset_code = 0 if cause is None else RESET_CAUSES.index(cause) + 1
    intervals = report["intervals"]
    if not intervals:
        raise PayloadError("intervals must be an array of at least 1 items")
    has_spans = False
    has_heights = False
    for iv in intervals:
        if iv.get("span", 1) != 1:
            has_spans = True
        if "height_classes" in iv:
            has_heights = True

    w = _writer
    w.n = 0
    w.array(7 if (has_spans or has_heights) else 6)
    w.head(0, report["seq"] & U16)
    w.uint(report["interval_s"], 60, 86400, "interval_s")
    w.uint(age, 0, 0xFFFFFFFF, "age_s")
    w.array(4)
    w.uint(status["battery_mv"], 0, U16, "status.battery_mv")
    w.uint(health, 0, U16, "status.health")
    w.uint(status["config_version"], 0, U16, "status.config_version")
    w.head(0, reset_code)
    last = intervals[-1]["lines"]
    w.array(2 * len(last))
    for line in last:
        w.head(0, line["total_in"] & U16)
        w.head(0, line["total_out"] & U16)
    w.array(len(intervals))
    for i in range(len(intervals)):
        iv = intervals[i]
        w.array(2)
        w.array(len(iv["zones"]))
        for j in range(len(iv["zones"])):
            zone = iv["zones"][j]
            w.array(4)
            w.uint(zone["visits"], 0, U16, "intervals[%d].zones[%d].visits", i, j)
            w.uint(zone["person_s"], 0, 0xFFFFFFFF, "intervals[%d].zones[%d].person_s", i, j)
            w.uint(zone["max_occupancy"], 0, 255, "intervals[%d].zones[%d].max_occupancy", i, j)
            hist = zone["dwell_hist"]
            _counts(w, None if hist is None else hist["counts"], "intervals[%d].zones[%d].dwell_hist",
                    len(DWELL_EDGES_S), i, j)
        w.array(2 * len(iv["lines"]))
        for k in range(len(iv["lines"])):
            line = iv["lines"][k]
            w.uint(line["in"], 0, U16, "intervals[%d].lines[%d].in", i, k)
            w.uint(line["out"], 0, U16, "intervals[%d].lines[%d].out", i, k)
    if has_spans or has_heights:
        w.head(5, int(has_spans) + int(has_heights))
        if has_spans:
            w.head(0, 0)
            w.array(len(intervals))
            for i in range(len(intervals)):
                w.uint(intervals[i].get("span", 1), 1, U16, "intervals[%d].span", i)
        if has_heights:
            w.head(0, 1)
            w.array(len(intervals))
            for i in range(len(intervals)):
                hc = intervals[i].get("height_classes")
                _counts(w, None if hc is None else hc["counts"], "intervals[%d].height_classes",
                        len(HEIGHT_EDGES_MM), i)
    message = w.bytes()
    if len(message) + TAG_LEN > MAX_FRAME:
        raise PayloadError("frame is %d bytes; the largest LoRaWAN payload is %d"
                           % (len(message) + TAG_LEN, MAX_FRAME))
    return compute_tag(message, dev_eui, FPORT_REPORT, key) + message


# --- strict decoder (downlinks) ----------------------------------------------
# The same checks, in the same order, as the reference codec: every head in
# document order (wire._scan), then trailing bytes, then duplicate keys,
# then integer keys, then key order.

def _arg(msg, pos, info):
    if info < 24:
        return info, pos
    if info > 27:
        raise PayloadError("malformed CBOR")
    size = 1 << (info - 24)
    if pos + size > len(msg):
        raise PayloadError(_TRUNCATED)
    value = 0
    for i in range(size):
        value = (value << 8) | msg[pos + i]
    if value < (24 if size == 1 else 1 << (4 * size)):
        raise PayloadError(_NOT_DETERMINISTIC)
    return value, pos + size


def _scan(msg, pos, depth):
    if depth > 16:
        raise PayloadError("CBOR nested too deeply")
    if pos >= len(msg):
        raise PayloadError(_TRUNCATED)
    major = msg[pos] >> 5
    info = msg[pos] & 31
    pos += 1
    if info == 31:
        raise PayloadError("indefinite-length CBOR items are not allowed")
    if major == 7:
        if info in (25, 26, 27):
            raise PayloadError("floating-point numbers are not allowed")
        if info != 22:
            raise PayloadError("simple values other than null are not allowed")
        return pos
    if major == 6:
        raise PayloadError("CBOR tags are not allowed")
    value, pos = _arg(msg, pos, info)
    if major in (2, 3):
        if pos + value > len(msg):
            raise PayloadError(_TRUNCATED)
        return pos + value
    if major == 4:
        for _ in range(value):
            pos = _scan(msg, pos, depth + 1)
    elif major == 5:
        for _ in range(2 * value):
            pos = _scan(msg, pos, depth + 1)
    return pos


def _build(msg, pos):
    """Value at pos (heads already checked); maps as lists of (key, value)."""
    major = msg[pos] >> 5
    info = msg[pos] & 31
    if major == 7:
        return None, pos + 1
    value, pos = _arg(msg, pos + 1, info)
    if major == 0:
        return value, pos
    if major == 1:
        return -1 - value, pos
    if major == 2:
        return bytes(msg[pos:pos + value]), pos + value
    if major == 3:
        try:
            return bytes(msg[pos:pos + value]).decode("utf-8"), pos + value
        except UnicodeError:
            raise PayloadError("malformed CBOR")
    items = []
    if major == 4:
        for _ in range(value):
            item, pos = _build(msg, pos)
            items.append(item)
        return items, pos
    keys = []
    for _ in range(value):
        key, pos = _build(msg, pos)
        if isinstance(key, _Map):
            key = key.pairs
        if key in keys:
            raise PayloadError("duplicate map key")
        keys.append(key)
        item, pos = _build(msg, pos)
        items.append((key, item))
    return _Map(items), pos


class _Map:
    def __init__(self, pairs):
        self.pairs = pairs


def _enc_int(k):
    # encoded bytes of an integer key, for the deterministic key order
    major, v = (0, k) if k >= 0 else (1, -1 - k)
    if v < 24:
        return bytes((major << 5 | v,))
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if v < 1 << (8 * size):
            return bytes((major << 5 | info,)) + v.to_bytes(size, "big")


def _check_keys(value):
    if isinstance(value, list):
        for item in value:
            _check_keys(item)
    elif isinstance(value, _Map):
        for key, item in value.pairs:
            if not isinstance(key, int) or isinstance(key, bool):
                raise PayloadError("map keys must be integers")
            _check_keys(item)


def _check_order(value):
    if isinstance(value, list):
        for item in value:
            _check_order(item)
    elif isinstance(value, _Map):
        prev = None
        for key, item in value.pairs:
            enc = _enc_int(key)
            if prev is not None and (len(enc), enc) <= (len(prev), prev):
                raise PayloadError(_NOT_DETERMINISTIC)
            prev = enc
            _check_order(item)


def _loads(msg):
    end = _scan(msg, 0, 0)
    if end != len(msg):
        raise PayloadError("%d trailing bytes after the message" % (len(msg) - end))
    value, _ = _build(msg, 0)
    _check_keys(value)
    _check_order(value)
    return value


def _uint(value, name, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or value > hi:
        raise PayloadError("%s must be an integer from %d to %d" % (name, lo, hi))
    return value


def _array(value, name, lo, hi):
    if not isinstance(value, list) or len(value) < lo or len(value) > hi:
        if lo == hi:
            raise PayloadError("%s must be an array of %d items" % (name, lo))
        raise PayloadError("%s must be an array of %d to %d items" % (name, lo, hi))
    return value


def _coords(values, name, lo, hi):
    _array(values, name, lo, hi)
    if len(values) % 2:
        raise PayloadError("%s must have an even number of coordinates (x, y pairs)" % name)
    for v in values:
        _uint(v, name + " coordinates", -32768, 32767)
    return [[values[k], values[k + 1]] for k in range(0, len(values), 2)]


def _edits(value, name, max_index):
    if not isinstance(value, _Map) or not value.pairs:
        raise PayloadError("%ss must be a non-empty map of index to definition or null" % name)
    return [(_uint(k, name + " index", 0, max_index - 1), v) for k, v in value.pairs]


def decode_downlink(frame, fport, dev_eui, key):
    """Configuration (fPort 2) or receipt (fPort 3) dict from a downlink
    frame; the tag is verified first."""
    frame = bytes(frame)
    if fport == FPORT_RECEIPT:
        return decode_receipt(frame, fport, dev_eui, key)
    if fport != FPORT_CONFIG:
        raise PayloadError("fPort %d carries no Vistelse configuration (version 1 uses fPort %d)"
                           % (fport, FPORT_CONFIG))
    tag, message = _split(frame, fport, dev_eui, key)
    wire = _loads(message)
    if not isinstance(wire, _Map):
        raise PayloadError("configuration must be a map")
    fields = {}
    for k, v in wire.pairs:
        fields[k] = v
    if 1 not in fields:
        raise PayloadError("config_version is missing")
    out = {"config_version": _uint(fields[1], "config_version", 1, U16)}
    if 2 in fields:
        out["interval_s"] = _uint(fields[2], "interval_s", 60, 86400)
    if 3 in fields:
        out["zones"] = [{"index": i, "delete": True} if poly is None else
                        {"index": i, "polygon_mm": _coords(poly, "zones[%d]" % i, 6, 16)}
                        for i, poly in _edits(fields[3], "zone", MAX_ZONES)]
    if 4 in fields:
        lines = []
        for i, seg in _edits(fields[4], "line", MAX_LINES):
            if seg is None:
                lines.append({"index": i, "delete": True})
            else:
                a, b = _coords(seg, "lines[%d]" % i, 4, 4)
                lines.append({"index": i, "a_mm": a, "b_mm": b})
        out["lines"] = lines
    if 5 in fields:
        out["min_count"] = _uint(fields[5], "min_count", 0, 255)
    if 6 in fields:
        out["sensor_mode"] = SENSOR_MODES[_uint(fields[6], "sensor_mode", 1, len(SENSOR_MODES)) - 1]
    if 7 in fields:
        out["still_hold_s"] = _uint(fields[7], "still_hold_s", 0, 3600)
    if 8 in fields:
        # a ToF sensor's mount: quarter turns in bits 0-1, mirrored columns in bit 2
        code = _uint(fields[8], "orientation", 0, 7)
        out["orientation"] = {"rotate": code & 3, "mirror": bool(code & 4)}
    out["tag"] = "".join("%02x" % b for b in tag)
    return out


def _split(frame, fport, dev_eui, key):
    if len(frame) > MAX_FRAME:
        raise PayloadError("frame is %d bytes; the largest LoRaWAN payload is %d" % (len(frame), MAX_FRAME))
    if len(frame) <= TAG_LEN:
        raise PayloadError("frame too short: %d bytes, a tag (8) and a message are needed" % len(frame))
    tag = frame[:TAG_LEN]
    message = frame[TAG_LEN:]
    if not _same(tag, compute_tag(message, dev_eui, fport, key)):
        raise PayloadError("authenticity tag does not match")
    return tag, message


def decode_receipt(frame, fport, dev_eui, key):
    """Receipt dict (receipt, next_seq, stored_seq) from a fPort 3 frame."""
    frame = bytes(frame)
    if fport != FPORT_RECEIPT:
        raise PayloadError("fPort %d carries no Vistelse receipt (version 1 uses fPort %d)" % (fport, FPORT_RECEIPT))
    tag, message = _split(frame, fport, dev_eui, key)
    wire = _loads(message)
    if not isinstance(wire, list) or len(wire) != 3:
        raise PayloadError("receipt must be an array of 3 items")
    number = _uint(wire[0], "receipt number", 1, 0xFFFFFFFF)
    next_seq = _uint(wire[1], "next_seq", 0, U16)
    bitmap = wire[2]
    if not isinstance(bitmap, bytes) or len(bitmap) > MAX_RECEIPT_BITMAP:
        raise PayloadError("stored must be a byte string of at most %d bytes" % MAX_RECEIPT_BITMAP)
    if bitmap and bitmap[-1] == 0:
        raise PayloadError("stored must not end with a zero byte")
    stored = []
    for k in range(8 * len(bitmap)):
        if bitmap[k >> 3] >> (k & 7) & 1:
            stored.append((next_seq + 1 + k) & U16)
    return {"receipt": number, "next_seq": next_seq, "stored_seq": stored,
            "tag": "".join("%02x" % b for b in tag)}

