"""The JavaScript (TS013) codec: vectors, ES5.1, fuzzing.

Run as ChirpStack and The Things Stack run it: tests/test_codec_quickjs.py;
as The Things Network device repository checks it: tests/test_ttn_device_repository.py.
"""
import json
import os
import random
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

import vistelse_codec as vc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JS = os.path.join(ROOT, "codecs", "js")


def node(args, stdin=None):
    return subprocess.run(["node"] + args, input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_node_suite_passes_every_vector():
    proc = node(["--test", os.path.join(JS, "test")])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout


def test_codec_is_ecmascript_5_1():
    """ChirpStack runs codecs in QuickJS, The Things Stack in an ES5 engine."""
    script = ("const acorn = require('acorn');"
              "acorn.parse(require('fs').readFileSync(process.argv[1], 'utf8'), {ecmaVersion: 5});")
    proc = node(["-e", script, os.path.join(JS, "vistelse-codec.js")])
    assert proc.returncode == 0, proc.stderr


def run_batch(items):
    stdin = "\n".join(json.dumps(i) for i in items) + "\n"
    proc = node([os.path.join(JS, "fuzz_runner.js")], stdin)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def reference(kind, data, fport):
    fn = vc.decode_uplink if kind == "up" else vc.decode_downlink
    try:
        return {"data": fn(bytes(data), fport)}
    except vc.PayloadError as exc:
        return {"errors": [exc.reason]}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["up", "down"]), st.integers(0, 4), st.binary(max_size=80)),
                min_size=20, max_size=20))
def test_arbitrary_bytes_never_throw_and_agree_with_the_reference(batch):
    items = [{"kind": k, "fPort": p, "bytes": list(b)} for k, p, b in batch]
    for (kind, fport, data), res in zip(batch, run_batch(items)):
        assert "thrown" not in res, res
        assert bool(res.get("errors")) != ("data" in res and res["data"] is not None)
        got = {"errors": res["errors"]} if res.get("errors") else {"data": res["data"]}
        assert got == reference(kind, data, fport)


def test_mutated_vectors_agree_with_the_reference():
    """Near-valid frames reach deep into the parser; both codecs must agree on each."""
    rng = random.Random(11)
    vectors = []
    for name, kind in (("uplink.json", "up"), ("downlink.json", "down")):
        with open(os.path.join(ROOT, "codecs", "vectors", name)) as f:
            vectors += [(kind, v) for v in json.load(f) if "data" in v["output"]]
    items = []
    for _ in range(1500):
        kind, v = rng.choice(vectors)
        frame = bytearray(v["input"]["bytes"])
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(8, len(frame) + 1)
            op = rng.random()
            if op < 0.5 and pos < len(frame):
                frame[pos] ^= 1 << rng.randrange(8)
            elif op < 0.75:
                del frame[pos:pos + rng.randint(1, 3)]
            else:
                frame[pos:pos] = bytes([rng.randrange(256)])
        items.append({"kind": kind, "fPort": v["input"]["fPort"], "bytes": list(frame)})
    for item, res in zip(items, run_batch(items)):
        assert "thrown" not in res
        got = {"errors": res["errors"]} if res.get("errors") else {"data": res["data"]}
        assert got == reference(item["kind"], item["bytes"], item["fPort"]), item
