"""Strict CBOR on top of cbor2: what the contract accepts, and why not.

cbor2 parses; this module adds the rules cbor2 leaves open: nothing after
the message, deterministic encoding, integer map keys, no floats, no tags,
no simple values but null.
"""


import cbor2

from .contract import MAX_FRAME, TAG_LEN, PayloadError, FPORT_CONFIG, FPORT_REPORT
from .tag import check_tag, compute_tag

_TRUNCATED = "truncated: the message ends inside a CBOR item"


def dumps(obj):
    return cbor2.dumps(obj, canonical=True)


def _scan(message, pos, depth):
    """Check one item's heads in document order; return the position after it.

    These are the rules a small hand-written decoder (JavaScript, MicroPython)
    applies head by head, so all codecs report the same first fault.
    """
    if depth > 16:
        raise PayloadError("CBOR nested too deeply")
    if pos >= len(message):
        raise PayloadError(_TRUNCATED)
    initial = message[pos]
    major, info = initial >> 5, initial & 31
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
    if info < 24:
        value = info
    elif info < 28:
        size = 1 << (info - 24)
        if pos + size > len(message):
            raise PayloadError(_TRUNCATED)
        value = int.from_bytes(message[pos:pos + size], "big")
        pos += size
        if value < (24 if size == 1 else 1 << (4 * size)):
            raise PayloadError("CBOR is not in deterministic encoding (shortest form, sorted keys)")
    else:
        raise PayloadError("malformed CBOR")
    if major in (2, 3):
        if pos + value > len(message):
            raise PayloadError(_TRUNCATED)
        return pos + value
    if major == 4:
        for _ in range(value):
            pos = _scan(message, pos, depth + 1)
    elif major == 5:
        for _ in range(2 * value):
            pos = _scan(message, pos, depth + 1)
    return pos


def _check_keys(obj):
    if type(obj) is list:
        for item in obj:
            _check_keys(item)
    elif type(obj) is dict:
        for key, value in obj.items():
            if type(key) is not int:
                raise PayloadError("map keys must be integers")
            _check_keys(value)


_INT_MIN, _INT_MAX = -(1 << 64), (1 << 64) - 1      # CBOR major types 0 and 1, no bignum tags


def _plain(obj, depth):
    """True when `obj` holds only integers (major types 0 and 1), text, bytes, null, arrays
    and maps with integer keys, nested no deeper than _scan allows."""
    if depth > 16:
        return False
    kind = type(obj)
    if kind is int:
        return _INT_MIN <= obj <= _INT_MAX
    if kind is str or kind is bytes or obj is None:
        return True
    if kind is list:
        for item in obj:
            if not _plain(item, depth + 1):
                return False
        return True
    if kind is dict:
        for key, value in obj.items():
            if type(key) is not int or not _plain(key, depth + 1) or not _plain(value, depth + 1):
                return False
        return True
    return False


def loads(message):
    """Decode exactly one CBOR item that obeys the contract's rules."""
    # The common case first: a message that is the deterministic encoding of plain values
    # (cbor2 re-encodes it to the same bytes) obeys every rule _scan checks, since that
    # encoding has shortest heads, definite lengths, no tags, floats or simple values but
    # null, and nothing after the item. Anything else takes the checks below, in order,
    # so a faulty message gets the same first fault as in the other codecs.
    try:
        obj = cbor2.loads(message, allow_indefinite=False, allow_duplicate_keys=False)
        if _plain(obj, 0) and dumps(obj) == message:
            return obj
    except Exception:
        pass
    return _loads_checked(message)


def _loads_checked(message):
    """loads() rule by rule: the first fault found is the one reported."""
    end = _scan(message, 0, 0)
    if end != len(message):
        raise PayloadError("%d trailing bytes after the message" % (len(message) - end))
    try:
        obj = cbor2.loads(message, allow_indefinite=False, allow_duplicate_keys=False)
    except cbor2.CBORDecodeError as exc:
        if "uplicate" in str(exc):
            raise PayloadError("duplicate map key") from None
        raise PayloadError("malformed CBOR") from None  # e.g. invalid UTF-8
    except (TypeError, ValueError):
        raise PayloadError("map keys must be integers") from None  # array or map as a key
    _check_keys(obj)
    # Key order: the heads are shortest already, so the only other way to
    # differ from the deterministic encoding is the order of map keys.
    if dumps(obj) != message:
        raise PayloadError("CBOR is not in deterministic encoding (shortest form, sorted keys)")
    return obj


def split_frame(frame, fport, expected_port, kind, dev_eui, key):
    """Check size, port and tag; return (tag, message bytes)."""
    frame = bytes(frame)
    if fport != expected_port:
        raise PayloadError("fPort %d carries no Vistelse %s (version 1 uses fPort %d)"
                           % (fport, kind, expected_port))
    if len(frame) > MAX_FRAME:
        raise PayloadError("frame is %d bytes; the largest LoRaWAN payload is %d" % (len(frame), MAX_FRAME))
    if len(frame) <= TAG_LEN:
        raise PayloadError("frame too short: %d bytes, a tag (8) and a message are needed" % len(frame))
    tag, message = frame[:TAG_LEN], frame[TAG_LEN:]
    if (dev_eui is None) != (key is None):
        raise ValueError("give both dev_eui and key to verify the tag, or neither")
    if key is not None and not check_tag(tag, message, dev_eui, fport, key):
        raise PayloadError("authenticity tag does not match")
    return tag, message


def join_frame(message, dev_eui, fport, key):
    return compute_tag(message, dev_eui, fport, key) + message


def open_frame(frame, fport, expected_port, kind, dev_eui, key, from_wire):
    """Check a frame and decode its message with `from_wire`; the tag goes in as hex."""
    tag, message = split_frame(frame, fport, expected_port, kind, dev_eui, key)
    data = from_wire(loads(message))
    data["tag"] = tag.hex()
    return data


def seal(wire, from_wire, dev_eui, fport, key):
    """The tagged frame of a wire-form message, checked by `from_wire` first."""
    from_wire(wire)
    frame = join_frame(dumps(wire), dev_eui, fport, key)
    if len(frame) > MAX_FRAME:
        raise PayloadError("frame is %d bytes; the largest LoRaWAN payload is %d" % (len(frame), MAX_FRAME))
    return frame


# uint and array name what they refuse: name, or name % parts when parts are
# given. The name is only formatted on refusal: a report checks each of its
# counts, and formatting every count's path cost more than checking it.
def uint(value, name, lo, hi, *parts):
    if type(value) is not int or value < lo or value > hi:
        raise PayloadError("%s must be an integer from %d to %d" % (name % parts if parts else name, lo, hi))
    return value


def array(value, name, lo=0, hi=None, *parts):
    if type(value) is not list or len(value) < lo or (hi is not None and len(value) > hi):
        if parts:
            name = name % parts
        if hi is None:
            raise PayloadError("%s must be an array of at least %d items" % (name, lo))
        if lo == hi:
            raise PayloadError("%s must be an array of %d items" % (name, lo))
        raise PayloadError("%s must be an array of %d to %d items" % (name, lo, hi))
    return value


__all__ = ["dumps", "loads", "split_frame", "join_frame", "open_frame", "seal", "uint", "array",
           "FPORT_CONFIG", "FPORT_REPORT"]
