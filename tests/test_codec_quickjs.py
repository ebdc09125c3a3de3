"""Every vector through the JavaScript codec in QuickJS, called exactly as
ChirpStack v4 and The Things Stack call it (tests/quickjs_hosts.js).

ChirpStack (chirpstack/src/codec/js/mod.rs) runs decodeUplink on every
uplink and encodeDownlink for every downlink it is asked to encode, with the
device variables and a 100 ms deadline over setup, compilation and the call;
it never calls decodeDownlink. The Things Stack
(pkg/messageprocessors/javascript/javascript.go) passes no variables, so it
never verifies the tag, and cannot sign a configuration.
"""
import json
import os
import subprocess

import pytest

import vistelse_codec as vc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOSTS = os.path.join(ROOT, "tests", "quickjs_hosts.js")
NEEDS_KEY = "authenticity tag does not match"
RECV_TIME_MS = 1780300800000  # 2026-06-01T08:00:00Z, the uplink's receive time
NOT_SIGNED = "tagKey and devEui variables are needed to sign a configuration"
INTERRUPTED = "JS error: InternalError: interrupted"


def load(name):
    with open(os.path.join(ROOT, "codecs", "vectors", name)) as f:
        return json.load(f)


UPLINK = load("uplink.json")
DOWNLINK = load("downlink.json")
ENCODABLE = [v for v in DOWNLINK if "data" in v["output"] and v.get("roundtrip") is not False]


def run_once(jobs):
    stdin = "\n".join(json.dumps(j) for j in jobs) + "\n"
    proc = subprocess.run(["node", HOSTS, "--warmup"], input=stdin, capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def run(jobs):
    """Results of the jobs. The deadline is wall-clock time, as in ChirpStack;
    on a busy shared machine a call of our codec that ran past it is run once
    more (a codec that needs more than 100 ms fails both times)."""
    results = run_once(jobs)
    again = [i for i, (j, r) in enumerate(zip(jobs, results))
             if "codec" not in j and r.get("error", "").startswith(INTERRUPTED)]
    if again:
        print("%d of %d calls ran past the deadline; run once more" % (len(again), len(jobs)))
        for i, r in zip(again, run_once([jobs[i] for i in again])):
            results[i] = r
    return results


def without_tag(data):
    data = dict(data)
    del data["tag"]
    return data


@pytest.fixture(scope="module")
def chirpstack():
    jobs = [{"host": "chirpstack", "fn": "decodeUplink",
             "input": {"bytes": v["input"]["bytes"], "fPort": v["input"]["fPort"], "recvTime": RECV_TIME_MS,
                       "variables": v["input"]["variables"]}} for v in UPLINK]
    jobs += [{"host": "chirpstack", "fn": "encodeDownlink",
              "input": {"data": without_tag(v["output"]["data"]), "fPort": v["input"]["fPort"], "variables": v["input"]["variables"]}}
             for v in ENCODABLE]
    jobs.append({"host": "chirpstack", "fn": "encodeDownlink",
                 "input": {"data": without_tag(ENCODABLE[0]["output"]["data"]), "fPort": 2, "variables": {}}})
    results = run(jobs)
    ms = sorted(r["ms"] for r in results)
    print("ChirpStack-style calls in QuickJS: %d, median %.1f ms, max %.1f ms" % (len(ms), ms[len(ms) // 2], ms[-1]))
    return results[:len(UPLINK)], results[len(UPLINK):-1], results[-1]


def test_chirpstack_decodes_every_uplink_vector(chirpstack):
    for v, res in zip(UPLINK, chirpstack[0]):
        if "data" in v["output"]:
            assert res == {"ok": {"data": v["output"]["data"]}, "ms": res["ms"]}, v["description"]
        else:
            # mod.rs: errors returned by decodeUplink fail the decode, joined by ", "
            assert res.get("error") == "decodeUplink returned errors: " + ", ".join(v["output"]["errors"]), \
                v["description"]


def test_chirpstack_encodes_every_configuration_vector(chirpstack):
    assert len(chirpstack[1]) == len(ENCODABLE) >= 5
    for v, res in zip(ENCODABLE, chirpstack[1]):
        assert res.get("ok") == {"bytes": v["input"]["bytes"], "fPort": v["input"]["fPort"]}, v["description"]
    # without the device's variables nothing is signed, and ChirpStack reports why
    assert chirpstack[2]["error"] == "encodeDownlink returned errors: " + NOT_SIGNED


def test_chirpstack_deadline_stops_a_runaway_codec():
    loop = "function decodeUplink(input) { while (true) {} }"
    at_load = "while (true) {}\nfunction decodeUplink(input) { return {data: {}}; }"
    frame = {"bytes": [1, 2, 3], "fPort": 1, "recvTime": RECV_TIME_MS, "variables": {}}
    results = run([{"host": "chirpstack", "fn": "decodeUplink", "input": frame, "codec": loop},
                   {"host": "chirpstack", "fn": "decodeUplink", "input": frame, "codec": at_load},
                   {"host": "chirpstack", "fn": "decodeUplink", "input": frame,
                    "codec": "function decodeUplink(input) { return {data: {t: input.recvTime.toISOString(),"
                             " b: Buffer.from(input.bytes).toString('hex'), v: input.variables}}; }"}])
    for res in results[:2]:
        assert res["error"].startswith(INTERRUPTED), res
        assert res["ms"] < 1000
    # the input is what mod.rs builds: bytes, fPort, recvTime as a Date, variables; Buffer imported
    assert results[2]["ok"] == {"data": {"t": "2026-06-01T08:00:00.000Z", "b": "010203", "v": {}}}


@pytest.fixture(scope="module")
def tts():
    jobs = [{"host": "tts", "fn": "decodeUplink", "input": {"bytes": v["input"]["bytes"], "fPort": v["input"]["fPort"]}}
            for v in UPLINK]
    jobs += [{"host": "tts", "fn": "decodeDownlink",
              "input": {"bytes": v["input"]["bytes"], "fPort": v["input"]["fPort"]}} for v in DOWNLINK]
    jobs.append({"host": "tts", "fn": "encodeDownlink",
                 "input": {"data": without_tag(ENCODABLE[0]["output"]["data"]), "fPort": 2}})
    results = run(jobs)
    return results[:len(UPLINK)], results[len(UPLINK):-1], results[-1]


def expected_without_key(v, decode):
    """What a decoder given no variables must return: the vector's outcome,
    except that a forged tag goes unnoticed."""
    if v["output"].get("errors") != [NEEDS_KEY]:
        return v["output"]
    return {"data": decode(bytes(v["input"]["bytes"]), v["input"]["fPort"])}


def test_tts_decodes_every_vector_without_variables(tts):
    for vectors, results, decode in ((UPLINK, tts[0], vc.decode_uplink), (DOWNLINK, tts[1], vc.decode_downlink)):
        forged = 0
        for v, res in zip(vectors, results):
            want = expected_without_key(v, decode)
            if "data" in want:
                assert res.get("ok") == {"data": want["data"], "warnings": []}, v["description"]
            else:
                assert res.get("error") == ", ".join(want["errors"]), v["description"]
            forged += v["output"].get("errors") == [NEEDS_KEY]
        assert forged >= 1  # the tag is not verified there: codecs/README.md says so


def test_tts_cannot_sign_a_configuration(tts):
    assert tts[2]["error"] == NOT_SIGNED
