"""Operator surface and HTTP ingest: ChirpStack HTTP integration, TTS webhook,
health, metrics, status, data view, CSV export, public register, tokens."""
import base64
import datetime as dt
import json
import re
import time
import urllib.error
import urllib.request

import pytest

from vistelse_gateway import config as config_mod
from vistelse_gateway.service import Gateway
from vistelse_gateway.testing import (APP_ID, KEY, chirpstack_uplink, cs_json, free_port, frame, report,
                                      tts_uplink)

TOKEN = "operator-token-0123456789"
INGEST = "ingest-token-0123456789ab"
EUI = bytes.fromhex("70b3d57ed0000011")
EUI_TTS = bytes.fromhex("70b3d57ed0000012")


@pytest.fixture
def gw(tmp_path):
    cfg = config_mod.check({
        "gateway": {"state_dir": str(tmp_path)},
        "http": {"listen": "127.0.0.1:%d" % free_port()},
        "auth": {"operator": [{"name": "ops", "token": TOKEN}], "ingest": [{"name": "ns", "token": INGEST}]},
        "register": {"owner": "Stockholms stad", "contact": "sensorer@example.se", "purpose": "Planning of squares",
                     "legal_basis": "GDPR art. 6.1 e (public interest)"},
    })
    g = Gateway(cfg)
    g.store.put_device({"dev_eui": EUI.hex(), "network": "chirpstack", "application": APP_ID, "site": "Torget",
                        "name": "torget-1",
                        "meta": {"zones": [{"name": "benches"}], "lines": [{"name": "north"}],
                                 "location": {"lat": 59.40, "lon": 17.94}, "height_classes": True},
                        "register": {"installed": "2024-05-01", "last_review": "2024-05-01"}}, KEY, "test")
    g.store.put_device({"dev_eui": EUI_TTS.hex(), "network": "tts", "application": "vistelse@city",
                        "tts_device_id": "node-0012", "site": "Parken",
                        "register": {"installed": dt.date.today().isoformat()}}, KEY, "test")
    g.start()
    yield g
    g.shutdown()


def call(gw, path, body=None, token=TOKEN, ctype="application/json", basic=False):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (gw.web.port, path), data=body,
                                 method="POST" if body is not None else "GET")
    if token:
        if basic:
            req.add_header("Authorization", "Basic " + base64.b64encode(b"x:" + token.encode()).decode())
        else:
            req.add_header("Authorization", "Bearer " + token)
    if body is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def feed(gw, n=30):
    now = time.time()
    for k in range(n):
        msg = chirpstack_uplink(EUI, frame(report(k, visits=k % 5, heights=True), EUI), k + 1,
                                when=now - (n - k) * 3600)
        code, text, _ = call(gw, "/ingest/chirpstack?event=up", cs_json(msg), token=INGEST)
        assert code == 200 and json.loads(text)["outcome"] == "accepted", text


def test_chirpstack_http_integration_json_and_protobuf(gw):
    msg = chirpstack_uplink(EUI, frame(report(1), EUI), 1)
    code, text, _ = call(gw, "/ingest/chirpstack?event=up", cs_json(msg), token=INGEST)
    assert code == 200 and json.loads(text)["outcome"] == "accepted"
    msg = chirpstack_uplink(EUI, frame(report(2), EUI), 2)
    code, text, _ = call(gw, "/ingest/chirpstack?event=up", msg.SerializeToString(), token=INGEST,
                         ctype="application/octet-stream")
    assert json.loads(text)["outcome"] == "accepted"
    # wrong token, or the operator token, cannot ingest
    assert call(gw, "/ingest/chirpstack?event=up", cs_json(msg), token="nope" * 5)[0] == 401
    assert call(gw, "/ingest/chirpstack?event=up", cs_json(msg), token=TOKEN)[0] == 401
    assert gw.store.count("reports") == 2


def test_tts_webhook(gw):
    _, body = tts_uplink(EUI_TTS, frame(report(9), EUI_TTS), 3, device_id="node-0012")
    code, text, _ = call(gw, "/ingest/tts/up", body, token=INGEST)
    assert code == 200 and json.loads(text)["outcome"] == "accepted"


def test_health_is_public_everything_else_needs_a_token(gw):
    assert call(gw, "/healthz", token=None)[0] == 200
    for path in ("/metrics", "/status", "/api/status", "/data", "/export.csv", "/access-log"):
        code, _, headers = call(gw, path, token=None)
        assert code == 401 and "Basic" in headers["WWW-Authenticate"]
        assert call(gw, path, token="wrong-token-0123456789")[0] == 401
    assert call(gw, "/status", basic=True)[0] == 200       # a browser: Basic with the token as password


def test_metrics_status_and_rejections(gw):
    feed(gw, 3)
    bad = chirpstack_uplink(EUI, frame(report(50), EUI, key=bytes(32)), 9)
    assert json.loads(call(gw, "/ingest/chirpstack?event=up", cs_json(bad), token=INGEST)[1])["reason"] == "bad_tag"
    code, text, headers = call(gw, "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'vistelse_gateway_uplinks_total{outcome="accepted"} 3' in text
    assert 'vistelse_gateway_rejections_total{reason="bad_tag"} 1' in text
    assert re.search(r'vistelse_gateway_device_last_seen_timestamp_seconds\{dev_eui="%s",site="Torget"\} \d+'
                     % EUI.hex(), text)
    assert 'vistelse_gateway_device_battery_millivolts{dev_eui="%s",site="Torget"} 3300' % EUI.hex() in text
    status = json.loads(call(gw, "/api/status")[1])
    dev = next(d for d in status["devices"] if d["dev_eui"] == EUI.hex())
    assert dev["battery_mv"] == 3300 and dev["rejected"] == 1 and dev["uplinks"] == 3
    assert status["rejected"][0]["reason"] == "bad_tag"
    code, page, _ = call(gw, "/status")
    assert "bad_tag" in page and EUI.hex() in page


def test_data_view_is_self_contained_svg(gw):
    feed(gw, 30)
    code, page, headers = call(gw, "/data?days=7")
    assert code == 200
    assert page.count("<svg") >= 4                  # hour-of-day, weekday heatmap, dwell, in/out, children
    assert "children" in page.lower()
    assert "<script" not in page and not re.search(r'(src|href)="https?://', page)
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_csv_export_is_written_to_the_access_log(gw):
    feed(gw, 5)
    code, text, headers = call(gw, "/export.csv?dev_eui=%s" % EUI.hex())
    assert code == 200 and headers["Content-Type"].startswith("text/csv")
    lines = text.strip().splitlines()
    assert lines[0].startswith("dev_eui,site,seq,start,end")
    assert len(lines) == 1 + 5 * 2                  # one zone and one line per interval
    log = json.loads(call(gw, "/access-log")[1])
    assert log["verification"]["ok"]
    entry = log["entries"][0]
    assert entry["action"] == "export.csv" and entry["actor"] == "ops"
    assert json.loads(entry["detail"])["intervals"] == 5


def test_admin_actions_are_logged(gw):
    code, _, _ = call(gw, "/admin/devices/%s/retire" % EUI.hex(), body=b"")
    assert code == 200
    assert gw.store.get_device(EUI.hex())["status"] == "retired"
    entry = gw.store.access_log(1)[0]
    assert entry["action"] == "device.status" and entry["actor"] == "ops"
    assert gw.store.verify_access_log()["ok"]


def test_public_register_flags_overdue_reviews_and_hides_keys(gw):
    code, text, _ = call(gw, "/register.json", token=None)
    assert code == 200
    data = json.loads(text)
    s = {x["id"]: x for x in data["sensors"]}
    old, new = s[EUI.hex()], s[EUI_TTS.hex()]
    assert old["review_overdue"] and old["review_due"] == "2025-05-01"
    assert not new["review_overdue"]
    for field in ("measures", "purpose", "legal_basis", "retention", "owner", "contact", "installed", "review_due"):
        assert old[field], field
    assert "benches" in old["measures"] and "children" in old["measures"]
    assert "72 hours" in old["retention"]
    assert KEY.hex() not in text and "key" not in json.dumps(data).lower().replace("keep", "")
    code, page, _ = call(gw, "/register", token=None)
    assert code == 200 and "overdue" in page and "Stockholms stad" in page


def test_no_api_returns_the_tag_key(gw):
    feed(gw, 2)
    for path in ("/api/status", "/metrics", "/status", "/export.csv", "/access-log", "/data", "/register.json"):
        text = call(gw, path)[1]
        assert KEY.hex() not in text.lower()
        assert base64.b64encode(KEY).decode() not in text
