"""Property-based fuzzing of every ingest path (hypothesis; atheris if installed):
arbitrary MQTT bodies, JSON, protobuf and payload bytes never crash the gateway,
and every rejection has a reason."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import vistelse_codec
from hypothesis import HealthCheck, given, settings, strategies as st

from vistelse_gateway.fuzz import EUI, build, check, make_pipeline, tagged
from vistelse_gateway.testing import chirpstack_uplink, cs_json, cs_topic, report

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    p = make_pipeline(str(tmp_path_factory.mktemp("fuzz")))
    yield p
    p.store.close()


@SETTINGS
@given(choice=st.integers(0, 6), data=st.binary(max_size=260), number=st.integers(0, 2 ** 32 - 1))
def test_any_body_on_any_path(pipe, choice, data, number):
    check(pipe, *build(choice, data, number))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                           max_leaves=10)


@SETTINGS
@given(field=st.sampled_from(["deduplicationId", "time", "deviceInfo", "devAddr", "fCnt", "fPort", "data",
                              "rxInfo", "dr", "txInfo", "object", "adr"]), value=json_values)
def test_chirpstack_json_with_any_field_value(pipe, field, value):
    doc = json.loads(cs_json(chirpstack_uplink(EUI, tagged(b"\x80"), 1)))
    doc[field] = value
    check(pipe, "chirpstack-mqtt", cs_topic(EUI), json.dumps(doc).encode())


@SETTINGS
@given(cut=st.integers(0, 400), flip=st.integers(0, 400), byte=st.integers(0, 255))
def test_mutated_protobuf(pipe, cut, flip, byte):
    body = bytearray(chirpstack_uplink(EUI, vistelse_codec.encode_uplink(report(5), dev_eui=EUI,
                                                                         key=bytes(range(32))), 3).SerializeToString())
    if flip < len(body):
        body[flip] = byte
    check(pipe, "chirpstack-mqtt", cs_topic(EUI), bytes(body[:cut] if cut < len(body) else body))


@SETTINGS
@given(seq=st.integers(0, 65535), visits=st.integers(0, 65535), person_s=st.integers(0, 2 ** 32 - 1),
       age=st.one_of(st.none(), st.integers(0, 2 ** 32 - 1)), n=st.integers(1, 3), f_cnt=st.integers(0, 2 ** 32 - 1),
       interval_s=st.integers(60, 86400), totals=st.integers(0, 65535))
def test_valid_reports_with_extreme_values(pipe, seq, visits, person_s, age, n, f_cnt, interval_s, totals):
    rep = report(seq, visits=visits % 60000, age_s=age, intervals=n, interval_s=interval_s, total_in=totals,
                 total_out=totals)
    rep["intervals"][0]["zones"][0]["person_s"] = person_s
    body = cs_json(chirpstack_uplink(EUI, vistelse_codec.encode_uplink(rep, dev_eui=EUI, key=bytes(range(32))), f_cnt))
    r = check(pipe, "chirpstack-mqtt", cs_topic(EUI), body)
    assert r["outcome"] != "rejected" or r["reason"] in ("replay", "fcnt_replay", "seq_outside_window")


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed (optional)")
def test_atheris_short_run(tmp_path):
    # a smoke run without coverage instrumentation (instrumenting takes ~20 s); the real
    # campaign is `python -m vistelse_gateway.fuzz -runs=...` (docs/gateway.md)
    r = subprocess.run([sys.executable, "-m", "vistelse_gateway.fuzz", "-runs=3000", "-max_len=300", "-seed=1"],
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                       env=dict(os.environ, VISTELSE_FUZZ_INSTRUMENT="0", TMPDIR=str(tmp_path)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Done 3000 runs" in r.stderr


# A ChirpStack v4 uplink event as its MQTT integration writes it (JSON marshaling), with the
# fields of chirpstack-api's integration.UplinkEvent / gw.UplinkRxInfo the gateway sees in
# practice: timestamps, a gateway location, string maps, enum names, base64 bytes.
FULL_UP = {
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d", "time": "2024-07-18T09:34:15.775023242+00:00",
    "deviceInfo": {"tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "tenantName": "City",
                   "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97", "applicationName": "vistelse",
                   "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad", "deviceProfileName": "node",
                   "deviceName": "torget-1", "devEui": "70b3d57ed0000001", "deviceClassEnabled": "CLASS_A",
                   "tags": {"site": "torget"}},
    "devAddr": "00189440", "adr": True, "dr": 1, "fCnt": 4, "fPort": 1, "confirmed": False, "data": "gAE=",
    "rxInfo": [{"gatewayId": "0016c001f153a14c", "uplinkId": 4217106255, "nsTime": "2024-07-18T09:34:15.7Z",
                "rssi": -36, "snr": 10.5, "channel": 2, "rfChain": 1,
                "location": {"latitude": 59.33, "longitude": 18.06, "altitude": 12.0},
                "context": "EFwMtA==", "metadata": {"region_config_id": "eu868"}, "crcStatus": "CRC_OK"},
               {"gatewayId": "0016c001f153a14d", "rssi": -101, "snr": -7.25}],
    "txInfo": {"frequency": 868100000, "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7,
                                                                "codeRate": "CR_4_5"}}},
}


def _both(doc):
    """-> (fast message or None, json_format message or the ParseError)."""
    from chirpstack_api import integration
    from google.protobuf import json_format
    from vistelse_gateway.ingest.chirpstack import UP_FIELDS, fill_plain
    fields = {k: doc[k] for k in UP_FIELDS if k in doc}
    try:
        slow = json_format.ParseDict(fields, integration.UplinkEvent(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        slow = exc
    return fill_plain(integration.UplinkEvent, fields), slow


def test_plain_json_path_gives_json_formats_message():
    fast, slow = _both(FULL_UP)
    assert fast is not None and fast == slow
    assert fast.rx_info[0].location.latitude == 59.33 and fast.device_info.tags["site"] == "torget"


@SETTINGS
@given(where=st.sampled_from(["", "deviceInfo", "rxInfo0", "rxInfo0.location"]),
       field=st.sampled_from(["deduplicationId", "devEui", "deviceClassEnabled", "tags", "dr", "fCnt", "fPort",
                              "data", "rssi", "snr", "uplinkId", "nsTime", "latitude", "context", "metadata",
                              "crcStatus", "fine", "rx_info", "f_cnt", "rxInfo"]),
       value=json_values | st.sampled_from(["NaN", "-Infinity", "5", "1e3", "AQ", "AQ==", "A-_=", "CLASS_B", 1.0,
                                             2 ** 32, -1, 3.5e38, "2024-01-01T00:00:00Z", "2024-13-01T00:00:00Z"]))
def test_plain_json_path_never_accepts_what_json_format_refuses(where, field, value):
    """Differential: the fast path either declines (None) or builds exactly json_format's message."""
    doc = json.loads(json.dumps(FULL_UP))
    target = doc
    for part in [p for p in where.split(".") if p]:
        target = target["rxInfo"][0] if part == "rxInfo0" else target[part]
    target[field] = value
    fast, slow = _both(doc)
    if fast is not None:
        assert not isinstance(slow, Exception), (where, field, value, slow)
        assert fast == slow, (where, field, value)
