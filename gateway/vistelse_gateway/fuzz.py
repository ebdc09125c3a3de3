"""Coverage-guided fuzzing of every ingest path with atheris.

    .venv/bin/python -m vistelse_gateway.fuzz -runs=100000

Each input picks a path (ChirpStack MQTT JSON/protobuf, ChirpStack HTTP,
TTS MQTT/webhook) and a shape (raw bytes; a valid event around fuzzed
payload bytes with a *correct* tag, so the strict decoder is reached; a
valid event with fuzzed fields). Every message must come out accepted,
duplicate, ignored or rejected with a reason; an exception or an
`internal_error` is a finding.
"""
import json
import os
import sys
import tempfile
import time

import vistelse_codec

from .metrics import Metrics
from .pipeline import Item, Pipeline
from .store.sqlite import SqliteStore
from .testing import APP_ID, KEY, chirpstack_uplink, cs_json, cs_topic, tts_uplink

EUI = bytes.fromhex("70b3d57ed00000f1")
EUI_TTS = bytes.fromhex("70b3d57ed00000f2")
OUTCOMES = ("accepted", "duplicate", "ignored", "rejected")


def make_pipeline(directory=None):
    directory = directory or tempfile.mkdtemp(prefix="vistelse-fuzz-")
    store = SqliteStore(os.path.join(directory, "fuzz.sqlite"), synchronous="normal")
    store.put_device({"dev_eui": EUI.hex(), "network": "chirpstack", "application": APP_ID}, KEY, "fuzz")
    store.put_device({"dev_eui": EUI_TTS.hex(), "network": "tts", "application": "vistelse@city",
                      "tts_device_id": "node-00f2"}, KEY, "fuzz")
    return Pipeline(store, Metrics())


def tagged(message, eui=EUI, fport=1):
    """A frame with a correct tag around arbitrary message bytes."""
    return vistelse_codec.compute_tag(message, eui, fport, KEY) + message


def build(choice, data, number):
    """-> (kind, where, body)"""
    path = choice % 7
    if path == 0:
        return "chirpstack-mqtt", cs_topic(EUI), data
    if path == 1:
        return "chirpstack-mqtt", cs_topic(EUI), cs_json(chirpstack_uplink(EUI, tagged(data), number))
    if path == 2:
        return "chirpstack-mqtt", cs_topic(EUI), chirpstack_uplink(EUI, tagged(data), number).SerializeToString()
    if path == 3:
        return "chirpstack-http", "up", data
    if path == 4:
        topic, body = tts_uplink(EUI_TTS, tagged(data, EUI_TTS), number, device_id="node-00f2")
        return "tts-mqtt", topic, body
    if path == 5:
        return "tts-webhook", "up", data
    # a valid ChirpStack JSON event with one field replaced by fuzzed JSON-ish text
    doc = json.loads(cs_json(chirpstack_uplink(EUI, tagged(b"\x80"), number)))
    keys = sorted(doc)
    doc[keys[number % len(keys)]] = data.decode("latin-1")
    return "chirpstack-mqtt", cs_topic(EUI), json.dumps(doc).encode()


def check(pipe, kind, where, body):
    item = Item(kind, where, body, "", None, time.time())
    pipe.process([item])
    r = item.result
    if r["outcome"] not in OUTCOMES:
        raise AssertionError("unknown outcome %r" % r)
    if r["outcome"] == "rejected" and (not r.get("reason") or r["reason"] == "internal_error"):
        raise AssertionError("rejection without a proper reason: %r" % r)
    return r


def main(argv=None):
    import atexit
    import shutil
    import atheris
    directory = tempfile.mkdtemp(prefix="vistelse-fuzz-")
    atexit.register(shutil.rmtree, directory, True)   # atheris ends the process with exit()
    pipe = make_pipeline(directory)
    if os.environ.get("VISTELSE_FUZZ_INSTRUMENT", "1") != "0":
        # coverage feedback from the gateway, the codec and protobuf's JSON parser (takes ~20 s to set up)
        atheris.instrument_all()

    def one(data):
        fdp = atheris.FuzzedDataProvider(data)
        choice = fdp.ConsumeIntInRange(0, 255)
        number = fdp.ConsumeIntInRange(0, 2 ** 32 - 1)
        check(pipe, *build(choice, fdp.ConsumeBytes(fdp.remaining_bytes()), number))
    atheris.Setup(list(argv if argv is not None else sys.argv), one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
