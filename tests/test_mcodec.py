"""The node's codec (codecs/micropython) meets every vector, in both runtimes."""
import json
import os

import pytest
from hypothesis import given, settings, strategies as st

import vistelse_codec as vc
import vistelse_mcodec as mc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "codecs", "vectors")


def vectors():
    out = []
    for name, kind in (("uplink.json", "up"), ("downlink.json", "down")):
        with open(os.path.join(VECTORS, name)) as f:
            out += [(kind, v) for v in json.load(f)]
    return out


# One script checks every vector; it runs unchanged under CPython and MicroPython.
CHECK_ALL = r'''
import json
import vistelse_mcodec as mc

def check(vectors):
    failures = []
    checked = 0
    for kind, v in vectors:
        var = v["input"]["variables"]
        eui = bytes.fromhex(var["devEui"])
        key = bytes.fromhex(var["tagKey"])
        out = v["output"]
        if kind == "up":
            if "data" in out and v.get("roundtrip", True):
                checked += 1
                if list(mc.encode_uplink(out["data"], eui, key)) != v["input"]["bytes"]:
                    failures.append(v["description"])
            continue
        checked += 1
        try:
            got = {"data": mc.decode_downlink(bytes(v["input"]["bytes"]), v["input"]["fPort"], eui, key)}
        except mc.PayloadError as exc:
            got = {"errors": [str(exc)]}
        if got != out:
            failures.append(v["description"] + " -> " + json.dumps(got))
    return checked, failures
'''


def test_every_vector_under_cpython():
    namespace = {}
    exec(CHECK_ALL, namespace)
    checked, failures = namespace["check"](vectors())
    assert not failures and checked > 20


def test_every_vector_under_micropython(micropython):
    script = CHECK_ALL + "\nchecked, failures = check(json.loads(%r))\nprint(json.dumps([checked, failures]))\n" % (
        json.dumps(vectors()))
    checked, failures = json.loads(micropython(script).strip().splitlines()[-1])
    assert not failures and checked > 20


EUI = bytes.fromhex("70b3d57ed0000001")
KEY = bytes(range(32))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_downlink_decoder_agrees_with_the_reference_on_arbitrary_messages(message):
    """Tagged correctly, so the parser itself is exercised; same answer as cbor2's path."""
    frame = vc.compute_tag(message, EUI, 2, KEY) + message if message else message
    try:
        want = {"data": vc.decode_downlink(frame, 2, dev_eui=EUI, key=KEY)}
    except vc.PayloadError as exc:
        want = {"errors": [exc.reason]}
    try:
        got = {"data": mc.decode_downlink(frame, 2, EUI, KEY)}
    except mc.PayloadError as exc:
        got = {"errors": [str(exc)]}
    assert got == want


def test_random_frames_under_micropython_give_reasons(micropython):
    """A few hundred random (correctly tagged) messages: PayloadError or a config, never a crash."""
    import random
    rng = random.Random(7)
    frames = []
    for _ in range(300):
        message = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        if rng.random() < 0.5:  # start like a map so the parser gets further
            message = bytes([0xA0 | rng.randrange(1, 4)]) + message
        frames.append(list(vc.compute_tag(message, EUI, 2, KEY) + message))
    script = r'''
import json
import vistelse_mcodec as mc
eui = bytes.fromhex("70b3d57ed0000001")
key = bytes(range(32))
results = []
for f in json.loads(%r):
    try:
        mc.decode_downlink(bytes(f), 2, eui, key)
        results.append("ok")
    except mc.PayloadError as exc:
        results.append(str(exc))
print(json.dumps(results))
''' % json.dumps(frames)
    results = json.loads(micropython(script).strip().splitlines()[-1])
    assert len(results) == 300 and all(isinstance(r, str) and r for r in results)
    # and the same reasons as the reference codec
    for f, r in zip(frames, results):
        try:
            vc.decode_downlink(bytes(f), 2, dev_eui=EUI, key=KEY)
            assert r == "ok"
        except vc.PayloadError as exc:
            assert r == exc.reason


def test_tag_matches_reference():
    for n in (0, 1, 23, 24, 200):
        message = bytes(range(n % 256))[:n]
        assert mc.compute_tag(message, EUI, 1, KEY) == vc.compute_tag(message, EUI, 1, KEY)


def test_forged_configuration_is_rejected_before_parsing():
    frame = vc.encode_downlink({"config_version": 3, "interval_s": 600}, dev_eui=EUI, key=KEY)
    with pytest.raises(mc.PayloadError, match="authenticity tag does not match"):
        mc.decode_downlink(frame, 2, EUI, bytes(32))
