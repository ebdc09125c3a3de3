"""Operator surface and HTTP ingest: ChirpStack HTTP integration, TTS webhook,
health, metrics, status, data view, CSV export, public register, tokens."""
import base64
import csv
import datetime as dt
import io
import json
import os
import re
import select
import socket
import threading
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


def _wait(cond, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _gateway(tmp_path, http=None):
    cfg = config_mod.check({
        "gateway": {"state_dir": str(tmp_path)},
        "http": dict({"listen": "127.0.0.1:0"}, **(http or {})),
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
    return g


@pytest.fixture
def gw(tmp_path):
    g = _gateway(tmp_path)
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


def test_health_check_reads_no_growing_table_and_reports_a_schema_change(gw):
    # /healthz is polled by load balancers and systemd: it must cost the same on a store of years
    statements = []
    db = gw.store._conn()
    db.set_trace_callback(statements.append)
    try:
        assert gw.web.health() == []
    finally:
        db.set_trace_callback(None)
    assert statements and not [s for s in statements if re.search(r"\b(reports|uplinks|quarantine|events)\b", s)]
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")    # another instance migrated on
    code, text, _ = call(gw, "/healthz", token=None)
    assert code == 503 and "schema version 99" in json.loads(text)["problems"][0]


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


# -- the HTTP server under ordinary and hostile use (issue: hand-written http.server) -----------
def _open_files():
    return len(os.listdir("/proc/self/fd"))


def _raw(gw, data, read=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", gw.web.port), timeout=timeout)
    if not read:
        s.sendall(data)
        return s
    for i in range(0, len(data), 16384):       # stop sending once the server has answered (e.g. 413)
        if select.select([s], [], [], 0)[0]:
            break
        try:
            s.sendall(data[i:i + 16384])
        except (BrokenPipeError, ConnectionResetError):
            break
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def test_health_checks_do_not_leak_store_connections(gw):
    call(gw, "/healthz", token=None)
    before = _open_files()
    for _ in range(500):
        assert call(gw, "/healthz", token=None)[0] == 200
    # the old server opened a SQLite connection (2 files) per request and never closed it
    assert _open_files() - before < 20


def test_slow_and_half_open_connections_are_bounded_and_timed_out(tmp_path):
    g = _gateway(tmp_path, http={"header_timeout_s": 1, "max_connections": 50})
    try:
        threads = threading.active_count()
        files = _open_files()
        slow = [_raw(g, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", read=False) for _ in range(120)]
        time.sleep(0.3)
        # no thread per connection, and past max_connections a connection is closed at once
        assert threading.active_count() - threads < 5
        assert _open_files() - files <= 120 + 50 + 5
        with pytest.raises(OSError):          # full: refused at once, not queued behind the slow ones
            call(g, "/healthz", token=None)
        time.sleep(2.5)
        for s in slow:                   # every unfinished request head was dropped by the server
            s.settimeout(2)
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:       # closed with our unread head in its buffer
                pass
            s.close()
        assert _open_files() - files < 10
        assert call(g, "/healthz", token=None)[0] == 200
    finally:
        g.shutdown()


def test_state_changing_routes_refuse_basic_auth_and_cross_site_requests(gw):
    path = "/admin/devices/%s/retire" % EUI.hex()
    # HTTP Basic is what a browser replays on a forged cross-site form post
    assert call(gw, path, body=b"", basic=True)[0] == 401
    for header in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (gw.web.port, path), data=b"", method="POST",
                                     headers=dict(header, Authorization="Bearer " + TOKEN))
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=10)
        assert exc.value.code == 403
    assert gw.store.get_device(EUI.hex())["status"] == "active"
    origin = {"Origin": "http://127.0.0.1:%d" % gw.web.port, "Authorization": "Bearer " + TOKEN}
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (gw.web.port, path), data=b"", method="POST",
                                 headers=origin)
    assert urllib.request.urlopen(req, timeout=10).status == 200
    assert gw.store.get_device(EUI.hex())["status"] == "retired"


def test_security_headers_on_every_answer(gw):
    for path, token in (("/healthz", None), ("/status", None), ("/nope", TOKEN), ("/register", None)):
        _, _, headers = call(gw, path, token=token)
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
        assert "server" not in {k.lower() for k in headers}


def _chunked(body, size=100):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\n\r\n"


def test_chunked_ingest_bodies_are_read(gw):
    msg = chirpstack_uplink(EUI, frame(report(3), EUI), 3)
    head = ("POST /ingest/chirpstack?event=up HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % INGEST)
    answer = _raw(gw, head.encode() + _chunked(cs_json(msg)))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b'"accepted"' in answer
    assert gw.store.count("reports") == 1
    # too large, chunked or not: 413, nothing stored
    big = b"{" + b" " * (300 * 1024) + b"}"
    assert _raw(gw, head.encode() + _chunked(big, 65536)).startswith(b"HTTP/1.1 413")
    assert call(gw, "/ingest/chirpstack?event=up", big, token=INGEST)[0] == 413


def test_slow_body_is_answered_408(tmp_path):
    g = _gateway(tmp_path, http={"body_timeout_s": 1})
    try:
        head = ("POST /ingest/chirpstack?event=up HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Length: 1000\r\nConnection: close\r\n\r\n{" % INGEST)
        assert _raw(g, head.encode()).startswith(b"HTTP/1.1 408")
    finally:
        g.shutdown()


def test_http_ingest_is_durable_when_the_store_is_slow(tmp_path):
    """ChirpStack posts once (5 s timeout, no retry): the answer must come in time, and mean "kept"."""
    g = _gateway(tmp_path, http={"ingest_wait_s": 0.5})
    g.pipeline.stop()                      # nothing commits: as if the store were stuck
    msg = chirpstack_uplink(EUI, frame(report(7), EUI), 7)
    t0 = time.monotonic()
    code, text, _ = call(g, "/ingest/chirpstack?event=up", cs_json(msg), token=INGEST)
    assert code == 200 and json.loads(text)["outcome"] == "queued"
    assert time.monotonic() - t0 < 4
    assert g.web.spool.count() == 1
    g.shutdown()                           # (or kill -9: the spool file was fsynced before the 200)
    g2 = _gateway(tmp_path)
    try:
        assert _wait(lambda: g2.store.count("reports") == 1)
        assert _wait(lambda: g2.web.spool.count() == 0)
    finally:
        g2.shutdown()


def test_csv_export_neutralises_formulas_and_rejects_bad_dates(gw):
    gw.store.put_device({"dev_eui": EUI.hex(), "network": "chirpstack", "application": APP_ID,
                         "site": "=HYPERLINK(\"http://evil.example\")", "name": "torget-1",
                         "meta": {"zones": [{"name": "+cmd|' /C calc'!A0"}], "lines": [{"name": "@SUM(1)"}]}},
                        None, "test")
    feed(gw, 2)
    code, text, _ = call(gw, "/export.csv")
    assert code == 200
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@")], cells
    assert "'=HYPERLINK(\"http://evil.example\")" in cells and "'+cmd|' /C calc'!A0" in cells
    for q in ("from=2024-13-01", "to=yesterday", "from=2025-02-01&to=2025-01-01"):
        code, text, _ = call(gw, "/export.csv?" + q)
        assert code == 400, q


def test_a_bad_registry_entry_does_not_take_down_the_register(gw):
    gw.store.put_device({"dev_eui": "70b3d57ed0000013", "network": "chirpstack", "application": APP_ID,
                         "site": "Kajen", "meta": {"location": {"lat": "59.4 N", "lon": 17.9}}}, KEY, "test")
    for path in ("/register", "/register.json"):
        code, text, _ = call(gw, path, token=None)
        assert code == 200, text
        assert "Torget" in text and "70b3d57ed0000013" in text
    bad = next(s for s in json.loads(call(gw, "/register.json", token=None)[1])["sensors"]
               if s["id"] == "70b3d57ed0000013")
    assert "59.4 N" in bad["error"]


def test_staleness_is_judged_on_the_data_clock_and_listed_under_problems(gw):
    # the demo's nodes run on simulated time that lies in the past
    past = time.time() - 20 * 86400
    for k in range(3):
        msg = chirpstack_uplink(EUI, frame(report(k), EUI), k + 1, when=past + k * 300)
        assert call(gw, "/ingest/chirpstack?event=up", cs_json(msg), token=INGEST)[0] == 200
    status = json.loads(call(gw, "/api/status")[1])
    dev = next(d for d in status["devices"] if d["dev_eui"] == EUI.hex())
    # the fixture's registry has one review overdue (a problem of its own, listed too); nothing else
    overdue = ["yearly review of torget-1 (70b3d57ed0000011) overdue since 2025-05-01"]
    assert not dev["stale"] and status["problems"] == overdue
    # a second node's data moves on by two hours: the first one is now behind on the same clock
    _, body = tts_uplink(EUI_TTS, frame(report(1), EUI_TTS), 1, device_id="node-0012", when=past + 7200)
    assert call(gw, "/ingest/tts/up", body, token=INGEST)[0] == 200
    status = json.loads(call(gw, "/api/status")[1])
    dev = next(d for d in status["devices"] if d["dev_eui"] == EUI.hex())
    assert dev["stale"]
    assert any("torget-1" in p and "no report" in p for p in status["problems"])
    page = call(gw, "/status")[1]
    assert "(stale)" in page and "no report" in page and "<li class=\"ok\">none</li>" not in page


def test_metrics_are_valid_prometheus_text(gw):
    from prometheus_client.parser import text_string_to_metric_families
    feed(gw, 2)
    code, text, headers = call(gw, "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("vistelse_gateway_uplinks_total", (("outcome", "accepted"),))] == 2
    assert samples[("vistelse_gateway_http_ingest_total", (("outcome", "committed"),))] == 2
    assert families["vistelse_gateway_device_battery_millivolts"].type == "gauge"


def test_context_is_served_for_the_ngsi_ld_terms(gw):
    code, text, headers = call(gw, "/context.jsonld", token=None)
    assert code == 200 and headers["Content-Type"].startswith("application/ld+json")
    ctx = json.loads(text)["@context"]
    for term in ("averageOccupancy", "maxOccupancy", "personSeconds", "dwellTimeHistogram", "heightClasses",
                 "cumulativeCount", "timeEstimated", "binEdges"):
        assert ctx[term].startswith("vistelse:"), term
