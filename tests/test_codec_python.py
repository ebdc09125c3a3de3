"""The reference codec against the contract: vectors, CDDL, COSE, properties."""
import json
import os
import subprocess
import sys

import cbor2
import pycddl
import pytest
from hypothesis import given, settings, strategies as st
from pycose.algorithms import HMAC25664
from pycose.headers import Algorithm
from pycose.keys import SymmetricKey
from pycose.messages import Mac0Message

import vistelse_codec as vc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "codecs", "vectors")
CDDL = open(os.path.join(ROOT, "codecs", "vistelse.cddl")).read()


def load(name):
    with open(os.path.join(VECTORS, name)) as f:
        return json.load(f)


UPLINKS = load("uplink.json")
DOWNLINKS = load("downlink.json")
ALL = [("up", v) for v in UPLINKS] + [("down", v) for v in DOWNLINKS]


def keys(vector):
    var = vector["input"]["variables"]
    return bytes.fromhex(var["devEui"]), bytes.fromhex(var["tagKey"])


def decode(kind, vector, with_key=True):
    data = bytes(vector["input"]["bytes"])
    eui, key = keys(vector) if with_key else (None, None)
    fn = vc.decode_uplink if kind == "up" else vc.decode_downlink
    return fn(data, vector["input"]["fPort"], dev_eui=eui, key=key)


def ids(items):
    return [kind + ": " + v["description"] for kind, v in items]


@pytest.mark.parametrize("kind,vector", ALL, ids=ids(ALL))
def test_vector_decodes_as_recorded(kind, vector):
    expected = vector["output"]
    if "errors" in expected:
        with pytest.raises(vc.PayloadError) as info:
            decode(kind, vector)
        assert [info.value.reason] == expected["errors"]
    else:
        assert decode(kind, vector) == expected["data"]


VALID = [(k, v) for k, v in ALL if "data" in v["output"]]
ROUNDTRIP = [(k, v) for k, v in VALID if v.get("roundtrip", True)]


@pytest.mark.parametrize("kind,vector", ROUNDTRIP, ids=ids(ROUNDTRIP))
def test_encoder_reproduces_vector_bytes(kind, vector):
    eui, key = keys(vector)
    data = dict(vector["output"]["data"])
    data.pop("tag")
    fn = vc.encode_uplink if kind == "up" else vc.encode_downlink
    assert list(fn(data, dev_eui=eui, key=key)) == vector["input"]["bytes"]


REPORT_SCHEMA = pycddl.Schema(CDDL)
CONFIG_SCHEMA = pycddl.Schema("root = config\n" + CDDL)
RECEIPT_SCHEMA = pycddl.Schema("root = receipt\n" + CDDL)


def schema_for(vector):
    """The message's CDDL rule by fPort; invalid vectors on a wrong port
    are checked against the rule of the message they imitate."""
    fport = vector["input"]["fPort"]
    if vector["description"].startswith("receipt"):
        return RECEIPT_SCHEMA
    return REPORT_SCHEMA if fport == 1 and "port is not" not in vector["description"] else CONFIG_SCHEMA


@pytest.mark.parametrize("kind,vector", VALID, ids=ids(VALID))
def test_valid_vectors_match_the_cddl(kind, vector):
    message = bytes(vector["input"]["bytes"][vc.TAG_LEN:])
    schema_for(vector).validate_cbor(message)


# Invalid vectors whose fault is one the CDDL itself expresses. (pycddl 0.6
# is blind to counts inside repeated array items, so those are left to the
# codecs; see the note in vistelse.cddl.)
SCHEMA_FAULTS = ["interval of 30 s (below 60 s)", "status with 3 items", "report is a map, not an array",
                 "text where seq should be", "config_version missing", "unknown sensor mode",
                 "configuration is an array", "interval of 5 (minutes meant?) rejected",
                 "receipt with 2 items", "receipt bitmap of 33 bytes", "receipt number 0 (numbers start at 1)",
                 "receipt bitmap as an array, not a byte string", "receipt as a map"]


@pytest.mark.parametrize("description", SCHEMA_FAULTS)
def test_cddl_rejects_schema_faults(description):
    (kind, vector), = [(k, v) for k, v in ALL if v["description"] == description]
    message = bytes(vector["input"]["bytes"][vc.TAG_LEN:])
    with pytest.raises(pycddl.ValidationError):
        schema_for(vector).validate_cbor(message)


@pytest.mark.parametrize("kind,vector", VALID, ids=ids(VALID))
def test_compact_tag_is_a_cose_mac0_tag(kind, vector):
    """The 8 bytes on the wire are the tag of a full COSE_Mac0 built by pycose."""
    eui, key = keys(vector)
    frame = bytes(vector["input"]["bytes"])
    aad = eui + bytes([vector["input"]["fPort"]])
    built = Mac0Message(phdr={Algorithm: HMAC25664}, payload=frame[8:], external_aad=aad)
    built.key = SymmetricKey(k=key)
    full = built.encode(tag=True)
    assert cbor2.loads(full).value[3] == frame[:8]
    # The receiver rebuilds COSE_Mac0 from the frame and pycose verifies it.
    # (pycose 1.1's Mac0Message.decode expects lists where cbor2 6 returns
    # tuples inside tags, so the message is rebuilt from its parts.)
    rebuilt = Mac0Message(phdr={Algorithm: HMAC25664}, payload=frame[8:], external_aad=aad)
    rebuilt.key = SymmetricKey(k=key)
    rebuilt.auth_tag = frame[:8]
    assert rebuilt.verify_tag()
    rebuilt.auth_tag = bytes(8)
    assert not rebuilt.verify_tag()
    assert len(full) - len(frame) >= 9


def test_size_budget_one_zone_one_line_fits_dr0():
    standard = [v for v in UPLINKS if v["description"].startswith("first report after a watchdog reset")][0]
    assert len(standard["input"]["bytes"]) <= 51


def test_vectors_are_up_to_date():
    result = subprocess.run([sys.executable, os.path.join(VECTORS, "generate.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_tag_binds_device_and_port():
    vector = UPLINKS[0]
    frame = bytes(vector["input"]["bytes"])
    eui, key = keys(vector)
    other = bytes.fromhex("70b3d57ed0000002")
    with pytest.raises(vc.PayloadError, match="authenticity tag does not match"):
        vc.decode_uplink(frame, 1, dev_eui=other, key=key)
    assert vc.compute_tag(frame[8:], eui, 2, key) != frame[:8]


def test_half_given_credentials_are_a_programming_error():
    with pytest.raises(ValueError):
        vc.decode_uplink(bytes(UPLINKS[0]["input"]["bytes"]), 1, dev_eui=bytes(8))


# --- properties -------------------------------------------------------------

EUI = bytes.fromhex("0011223344556677")
KEY = bytes(range(100, 132))
u16 = st.integers(0, 0xFFFF)
count = st.integers(0, 500)
HEALTH = [f for f in vc.HEALTH_FLAGS if f != "time_lost"]


@st.composite
def reports(draw):
    n_zones = draw(st.integers(0, 3))
    n_lines = draw(st.integers(0, 2))
    n = draw(st.integers(1, 3))
    tof = draw(st.booleans())
    merged = draw(st.booleans())
    interval_s = draw(st.integers(60, 86400))
    intervals = []
    for _ in range(n):
        iv = {"span": draw(st.integers(1, 4)) if merged else 1,
              "zones": [{"visits": draw(count), "person_s": draw(st.integers(0, 2 ** 32 - 1)),
                         "max_occupancy": draw(st.integers(0, 255)),
                         "dwell_hist": draw(st.one_of(st.none(), st.builds(
                             lambda c: {"edges_s": list(vc.DWELL_EDGES_S), "counts": c},
                             st.lists(count, min_size=7, max_size=7))))}
                        for _ in range(n_zones)],
              "lines": [{"in": draw(count), "out": draw(count)} for _ in range(n_lines)]}
        if tof:
            iv["height_classes"] = draw(st.one_of(st.none(), st.builds(
                lambda c: {"edges_mm": list(vc.HEIGHT_EDGES_MM), "counts": c},
                st.lists(count, min_size=2, max_size=2))))
        intervals.append(iv)
    totals = [[draw(u16), draw(u16)] for _ in range(n_lines)]
    age = draw(st.one_of(st.none(), st.integers(0, 10 ** 6)))
    seq = draw(u16)
    # Derived fields, the way the decoder computes them.
    s = seq
    for iv in intervals:
        iv["seq"] = s
        s = (s + iv["span"]) & 0xFFFF
        iv["duration_s"] = iv["span"] * interval_s
    running = [list(t) for t in totals]
    end_age = age
    for iv in reversed(intervals):
        for k, line in enumerate(iv["lines"]):
            line["total_in"], line["total_out"] = running[k]
            running[k] = [(running[k][0] - line["in"]) & 0xFFFF, (running[k][1] - line["out"]) & 0xFFFF]
        iv["end_age_s"] = end_age
        if end_age is not None:
            end_age += iv["duration_s"]
    return {"seq": seq, "interval_s": interval_s, "age_s": age,
            "status": {"battery_mv": draw(u16), "health": sorted(draw(st.sets(st.sampled_from(HEALTH))),
                                                                  key=vc.HEALTH_FLAGS.index),
                       "config_version": draw(u16),
                       "reset_cause": draw(st.sampled_from([None] + list(vc.RESET_CAUSES.values())))},
            "intervals": intervals}


@settings(max_examples=300, deadline=None)
@given(reports())
def test_report_roundtrip(report):
    try:
        frame = vc.encode_uplink(report, dev_eui=EUI, key=KEY)
    except vc.PayloadError as exc:
        assert "largest LoRaWAN payload" in exc.reason
        return
    decoded = vc.decode_uplink(frame, vc.FPORT_REPORT, dev_eui=EUI, key=KEY)
    assert decoded.pop("tag") == frame[:8].hex()
    assert decoded == report


coords = st.integers(-32768, 32767)


@st.composite
def configs(draw):
    cfg = {"config_version": draw(st.integers(1, 0xFFFF))}
    if draw(st.booleans()):
        cfg["interval_s"] = draw(st.integers(60, 86400))
    if draw(st.booleans()):
        idx = draw(st.sets(st.integers(0, 7), min_size=1, max_size=2))
        cfg["zones"] = [{"index": i, "delete": True} if draw(st.booleans()) else
                        {"index": i, "polygon_mm": draw(st.lists(st.lists(coords, min_size=2, max_size=2),
                                                                 min_size=3, max_size=8))}
                        for i in sorted(idx)]
    if draw(st.booleans()):
        cfg["lines"] = [{"index": draw(st.integers(0, 3)), "a_mm": [draw(coords), draw(coords)],
                         "b_mm": [draw(coords), draw(coords)]}]
    if draw(st.booleans()):
        cfg["min_count"] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        cfg["sensor_mode"] = draw(st.sampled_from(list(vc.SENSOR_MODES.values())))
    if draw(st.booleans()):
        cfg["still_hold_s"] = draw(st.integers(0, 3600))
    if draw(st.booleans()):
        cfg["orientation"] = {"rotate": draw(st.integers(0, 3)), "mirror": draw(st.booleans())}
    return cfg


@settings(max_examples=200, deadline=None)
@given(configs())
def test_config_roundtrip(cfg):
    frame = vc.encode_downlink(cfg, dev_eui=EUI, key=KEY)
    decoded = vc.decode_downlink(frame, vc.FPORT_CONFIG, dev_eui=EUI, key=KEY)
    decoded.pop("tag")
    assert decoded == cfg


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=260), st.integers(0, 255))
def test_arbitrary_bytes_give_a_reason_never_a_crash(data, fport):
    for fn in (vc.decode_uplink, vc.decode_downlink):
        try:
            fn(data, fport)
        except vc.PayloadError as exc:
            assert isinstance(exc.reason, str) and exc.reason


@settings(max_examples=800, deadline=None)
@given(st.data())
def test_mutated_valid_messages_give_a_reason_never_a_crash(data):
    """Fuzz near valid messages, where a random byte string rarely gets."""
    kind, vector = data.draw(st.sampled_from(VALID))
    frame = bytearray(vector["input"]["bytes"])
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(8, len(frame)))
        if op == "flip" and pos < len(frame):
            frame[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del frame[pos:pos + data.draw(st.integers(1, 4))]
        else:
            frame[pos:pos] = bytes([data.draw(st.integers(0, 255))])
    fn = vc.decode_uplink if kind == "up" else vc.decode_downlink
    try:
        fn(bytes(frame), vector["input"]["fPort"])
    except vc.PayloadError as exc:
        assert exc.reason


def _outcome(fn, message):
    try:
        return ("ok", fn(message))
    except vc.PayloadError as exc:
        return ("fault", exc.reason)


_cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats(allow_nan=False) | st.text(max_size=4)
    | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.integers(-30, 30) | st.text(max_size=2), inner,
                                                                  max_size=4),
    max_leaves=20)


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_fast_cbor_path_decides_as_the_rule_by_rule_checks(data):
    """wire.loads takes a shortcut for deterministic encodings of plain values: on any input
    (valid messages mutated, arbitrary values encoded either way, raw bytes) it must give
    the value or the first fault that the rule-by-rule checks give."""
    from vistelse_codec import wire
    how = data.draw(st.sampled_from(["vector", "value", "bytes"]))
    if how == "vector":
        _, vector = data.draw(st.sampled_from(VALID))
        message = bytearray(vector["input"]["bytes"][8:])
        if data.draw(st.booleans()) and message:
            pos = data.draw(st.integers(0, len(message) - 1))
            message[pos] ^= 1 << data.draw(st.integers(0, 7))
        message = bytes(message)
    elif how == "value":
        message = cbor2.dumps(data.draw(_cbor_values), canonical=data.draw(st.booleans()))
    else:
        message = data.draw(st.binary(max_size=64))
    assert _outcome(wire.loads, message) == _outcome(wire._loads_checked, message)


def test_fast_cbor_path_keeps_the_depth_and_integer_limits():
    from vistelse_codec import wire
    for value in (0, [0], {1: [2, None, b"x", "y"]}, 1 << 64, -(1 << 64) - 1, (1 << 64) - 1, True, 1.5,
                  cbor2.CBORTag(1, 0), [[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]], [[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]):
        message = cbor2.dumps(value, canonical=True)
        assert _outcome(wire.loads, message) == _outcome(wire._loads_checked, message), value
    assert _outcome(wire.loads, cbor2.dumps([[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]))[1] == "CBOR nested too deeply"


def _two_by_two_report_wire():
    """A report's wire form with two intervals of two zones and one line; it decodes."""
    from vistelse_codec import report
    hist = [4, 2, 1, 1] + [0] * (report._DWELL_BINS - 4)
    wire = [7, 300, 0, [3300, 0, 1, 1], [9, 7],
            [[[[8, 700, 3, hist], [2, 50, 1, []]], [5, 3]],
             [[[3, 120, 2, []], [1, 30, 1, list(hist)]], [4, 4]]]]
    report._from_wire(wire)
    return wire


@pytest.mark.parametrize("path, bad, reason", [
    ((4, 1), -1, "totals[1] must be an integer from 0 to 65535"),
    ((5, 1, 0, 0, 1), 1 << 32, "intervals[1].zones[0].person_s must be an integer from 0 to 4294967295"),
    ((5, 0, 0, 1, 0), "3", "intervals[0].zones[1].visits must be an integer from 0 to 65535"),
    ((5, 0, 0, 1, 2), 256, "intervals[0].zones[1].max_occupancy must be an integer from 0 to 255"),
    ((5, 1, 0, 1, 3, 2), -4, "intervals[1].zones[1].dwell_hist[2] must be an integer from 0 to 65535"),
    ((5, 1, 1, 1), 1.0, "intervals[1].lines[0].out must be an integer from 0 to 65535"),
    ((5, 1, 0, 1), [1, 2], "intervals[1].zones[1] must be an array of 4 items"),
    ((5, 1), [[]], "intervals[1] must be an array of 2 items"),
])
def test_each_item_is_named_when_refused(path, bad, reason):
    """The decoder formats an item's name only when it refuses the item (a gateway
    decodes thousands of reports a second): the name must still be the exact item."""
    from vistelse_codec import report
    wire = _two_by_two_report_wire()
    target = wire
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = bad
    with pytest.raises(vc.PayloadError) as exc:
        report._from_wire(wire)
    assert exc.value.reason == reason


def test_span_and_height_class_items_are_named_when_refused():
    from vistelse_codec import report
    wire = _two_by_two_report_wire()
    bins = report._HEIGHT_BINS
    for ext, reason in (({0: [1, 0]}, "intervals[1].span must be an integer from 1 to 65535"),
                        ({1: [[], [1, 2, 3]]}, "intervals[1].height_classes must have 0 or %d counts" % bins),
                        ({1: [[0] * (bins - 1) + [-1], []]},
                         "intervals[0].height_classes[%d] must be an integer from 0 to 65535" % (bins - 1))):
        with pytest.raises(vc.PayloadError) as exc:
            report._from_wire(wire + [ext])
        assert exc.value.reason == reason
