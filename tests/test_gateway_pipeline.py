"""Gateway ingest pipeline: parse, identify, verify, dedupe, store (no network)."""
import os
import sqlite3
import time

import pytest

from vistelse_gateway.ingest import chirpstack
from vistelse_gateway.metrics import Metrics
from vistelse_gateway.pipeline import Item, Pipeline
from vistelse_gateway.store.sqlite import SqliteStore
from vistelse_gateway.testing import (APP_ID, KEY, chirpstack_uplink, cs_json, cs_topic, frame, report,
                                      tts_uplink)

EUI = bytes.fromhex("70b3d57ed0000001")
EUI_TTS = bytes.fromhex("70b3d57ed0000002")


@pytest.fixture
def gw(stores):
    store = stores.open()
    store.put_device({"dev_eui": EUI.hex(), "network": "chirpstack", "application": APP_ID, "site": "Torget",
                      "meta": {"zones": [{"name": "benches"}], "lines": [{"name": "north gate"}]}}, KEY, "test")
    store.put_device({"dev_eui": EUI_TTS.hex(), "network": "tts", "application": "vistelse@city",
                      "tts_device_id": "node-0002", "site": "Parken"}, KEY, "test")
    pipe = Pipeline(store, Metrics())
    pipe.stores = stores
    yield pipe


def run(pipe, kind, where, body, ctype=""):
    item = Item(kind, where, body, ctype, None, time.time())
    pipe.process([item])
    return item.result


def cs(pipe, rep, f_cnt, eui=EUI, key=KEY, app=APP_ID, proto=False, f_port=1, topic_app=None, when=None):
    msg = chirpstack_uplink(eui, frame(rep, eui, key), f_cnt, app=app, f_port=f_port, when=when)
    body = msg.SerializeToString() if proto else cs_json(msg)
    return run(pipe, "chirpstack-mqtt", cs_topic(eui, app=topic_app or app), body)


def n_reports(pipe):
    return pipe.store.count("reports")


def test_chirpstack_json_and_protobuf_are_accepted(gw):
    assert cs(gw, report(10), 5)["outcome"] == "accepted"
    assert cs(gw, report(11), 6, proto=True)["outcome"] == "accepted"
    rows = gw.store.reports()
    assert [r["seq"] for r in rows] == [10, 11]
    assert rows[0]["data"]["zones"][0]["visits"] == 5
    assert rows[0]["end_at"] == pytest.approx(time.time() - 2, abs=5)
    assert gw.metrics.get("vistelse_gateway_uplinks_total", outcome="accepted") == 2


def test_fcnt_zero_is_absent_in_json_and_accepted(gw):
    msg = chirpstack_uplink(EUI, frame(report(1), EUI), 0)
    body = cs_json(msg)
    assert b"fCnt" not in body          # protobuf JSON omits zero fields
    assert run(gw, "chirpstack-mqtt", cs_topic(EUI), body)["outcome"] == "accepted"
    assert gw.store.reports()[0]["f_cnt"] == 0


def test_redelivery_is_a_duplicate_and_not_stored_twice(gw):
    msg = cs_json(chirpstack_uplink(EUI, frame(report(7), EUI), 3))
    assert run(gw, "chirpstack-mqtt", cs_topic(EUI), msg)["outcome"] == "accepted"
    assert run(gw, "chirpstack-mqtt", cs_topic(EUI), msg)["outcome"] == "duplicate"
    assert n_reports(gw) == 1


def test_batch_with_old_and_new_intervals_stores_only_the_new(gw):
    cs(gw, report(100, intervals=2), 1)                  # seqs 100, 101
    r = cs(gw, report(100, intervals=4, total_in=104, total_out=92), 2)   # 100..103, first two stored
    assert r["outcome"] == "accepted" and r["stored"] == 2 and r["duplicates"] == 2
    assert sorted(x["seq"] for x in gw.store.reports()) == [100, 101, 102, 103]


def test_sequence_wraps_and_totals_are_extended(gw):
    cs(gw, report(65534, total_in=65534, total_out=10), 1)
    cs(gw, report(65535, total_in=65535, total_out=11), 2)
    cs(gw, report(0, total_in=3, total_out=12), 3)       # both counters wrapped
    rows = gw.store.reports()
    assert [r["seq"] for r in rows] == [65534, 65535, 65536]
    assert [r["seq16"] for r in rows] == [65534, 65535, 0]
    assert rows[-1]["data"]["lines"][0]["total_in_ext"] == 65536 + 3


def test_same_seq_with_other_content_is_a_replay(gw):
    cs(gw, report(50, visits=5), 1)
    r = cs(gw, report(50, visits=6), 2)
    assert r["outcome"] == "rejected" and r["reason"] == "replay"
    assert n_reports(gw) == 1
    q = gw.store.quarantine()
    assert q[0]["reason"] == "replay" and q[0]["dev_eui"] == EUI.hex()


def test_old_frame_with_lower_fcnt_is_an_fcnt_replay(gw):
    old = cs_json(chirpstack_uplink(EUI, frame(report(1), EUI), 10))
    run(gw, "chirpstack-mqtt", cs_topic(EUI), old)
    cs(gw, report(2), 11)
    replayed = cs_json(chirpstack_uplink(EUI, frame(report(1), EUI), 9))
    r = run(gw, "chirpstack-mqtt", cs_topic(EUI), replayed)
    assert r["reason"] == "fcnt_replay"


def test_rejoin_resets_the_frame_counter(gw):
    cs(gw, report(1), 500)
    join = chirpstack.integration.JoinEvent(deduplication_id="j1", dev_addr="0a0b0c0d")
    join.device_info.application_id = APP_ID
    join.device_info.dev_eui = EUI.hex()
    join.time.GetCurrentTime()
    assert run(gw, "chirpstack-mqtt", cs_topic(EUI, "join"), cs_json(join))["event"] == "join"
    r = cs(gw, report(2), 0)
    assert r["outcome"] == "accepted" and not r["warnings"]


def test_fcnt_regression_without_join_still_stores_new_data_with_a_warning(gw):
    cs(gw, report(1), 500)
    r = cs(gw, report(2), 3)
    assert r["outcome"] == "accepted" and r["warnings"] == ["fcnt_regressed_without_join"]


@pytest.mark.parametrize("case,reason", [
    ("wrong_key", "bad_tag"),
    ("unknown", "unknown_device"),
    ("app", "application_mismatch"),
    ("topic", "topic_mismatch"),
    ("port", "unexpected_fport"),
    ("garbage_payload", "bad_tag"),
    ("not_json", "malformed"),
    ("seq_far_back", "seq_outside_window"),
])
def test_rejections_are_quarantined_with_a_reason(gw, case, reason):
    if case == "wrong_key":
        r = cs(gw, report(1), 1, key=bytes(32))
    elif case == "unknown":
        other = bytes.fromhex("70b3d57ed00000ff")
        r = cs(gw, report(1), 1, eui=other)
    elif case == "app":
        r = cs(gw, report(1), 1, app="11111111-2222-3333-4444-555555555555")
    elif case == "topic":
        r = cs(gw, report(1), 1, topic_app="11111111-2222-3333-4444-555555555555")
    elif case == "port":
        msg = chirpstack_uplink(EUI, b"\x00" * 12, 1, f_port=5)
        r = run(gw, "chirpstack-mqtt", cs_topic(EUI), cs_json(msg))
    elif case == "garbage_payload":
        msg = chirpstack_uplink(EUI, b"\x01" * 20, 1)
        r = run(gw, "chirpstack-mqtt", cs_topic(EUI), cs_json(msg))
    elif case == "not_json":
        r = run(gw, "chirpstack-mqtt", cs_topic(EUI), b"{not json")
    elif case == "seq_far_back":
        cs(gw, report(20000), 1)
        r = cs(gw, report(10000), 2)
    assert r["outcome"] == "rejected" and r["reason"] == reason
    assert gw.store.quarantine()[0]["reason"] == reason
    assert gw.metrics.get("vistelse_gateway_rejections_total", reason=reason) == 1


def test_retired_device_is_rejected(gw):
    gw.store.set_device_status(EUI.hex(), "retired", "test")
    assert cs(gw, report(1), 1)["reason"] == "device_retired"


def test_ack_and_txack_are_ignored(gw):
    r = run(gw, "chirpstack-mqtt", cs_topic(EUI, "txack"), b"{}")
    assert r["outcome"] == "ignored"
    assert gw.store.count("quarantine") == 0


def test_the_things_stack_mqtt_and_webhook(gw):
    topic, body = tts_uplink(EUI_TTS, frame(report(5), EUI_TTS), 7)
    assert run(gw, "tts-mqtt", topic, body)["outcome"] == "accepted"
    _, body = tts_uplink(EUI_TTS, frame(report(6), EUI_TTS), 8)
    assert run(gw, "tts-webhook", "up", body)["outcome"] == "accepted"
    # the topic's tenant must match the registry
    topic, body = tts_uplink(EUI_TTS, frame(report(7), EUI_TTS), 9, tenant="other")
    assert run(gw, "tts-mqtt", topic, body)["reason"] == "application_mismatch"
    # f_cnt 0 is omitted by TTS as well
    topic, body = tts_uplink(EUI_TTS, frame(report(8), EUI_TTS), 0)
    assert b"f_cnt" not in body
    r = run(gw, "tts-mqtt", topic, body)      # new data with a lower fCnt and no join seen: kept, with a warning
    assert r["outcome"] == "accepted" and r["warnings"] == ["fcnt_regressed_without_join"]


def test_time_lost_interval_end_is_estimated_from_neighbours(gw):
    cs(gw, report(1, age_s=0), 1, when=time.time() - 1000)
    first = gw.store.reports()[0]
    r = cs(gw, report(2, age_s=None, health=["sensor_restarted"], reset_cause="power_on"), 2)
    assert r["outcome"] == "accepted"
    second = gw.store.reports()[1]
    assert second["time_estimated"] == 1
    assert second["end_at"] == pytest.approx(first["end_at"] + 300, abs=1)


def test_downlink_is_marked_applied_or_rejected(gw):
    gw.store.add_downlink({"dev_eui": EUI.hex(), "config_version": 4, "config": {"interval_s": 600},
                           "via": "test"})
    cs(gw, report(1, config_version=3), 1)
    assert gw.store.downlinks()[0]["status"] == "pending"
    cs(gw, report(2, config_version=4), 2)
    assert gw.store.downlinks()[0]["status"] == "applied"
    gw.store.add_downlink({"dev_eui": EUI.hex(), "config_version": 5, "config": {"interval_s": 5},
                           "via": "test"})
    cs(gw, report(3, config_version=4, health=["config_rejected"]), 3)
    assert gw.store.downlinks()[1]["status"] == "rejected"


def test_retention_removes_raw_uplinks_but_keeps_reports(gw):
    cs(gw, report(1), 1)
    assert gw.store.count("uplinks") == 1
    gw.store.purge(time.time() + 1)
    assert gw.store.count("uplinks") == 0 and gw.store.count("reports") == 1


def test_access_log_is_a_verifiable_hash_chain(gw):
    gw.store.log_access("alice", "export.csv", {"rows": 3})
    gw.store.log_access("bob", "config.change", {"x": 1})
    ok = gw.store.verify_access_log()
    assert ok["ok"] and ok["entries"] == 4      # two device registrations + two entries
    gw.stores.sql("UPDATE access_log SET actor='mallory' WHERE id=3")
    bad = gw.store.verify_access_log()
    assert not bad["ok"] and bad["first_bad"] == 3
    gw.stores.sql("UPDATE access_log SET actor='alice' WHERE id=3")
    gw.stores.sql("DELETE FROM access_log WHERE id=2")
    assert gw.store.verify_access_log()["first_bad"] == 3


def test_tag_key_file_is_private(tmp_path):
    import os
    import stat
    SqliteStore(tmp_path / "gw.sqlite").close()
    assert stat.S_IMODE(os.stat(tmp_path / "gw.sqlite").st_mode) == 0o600


def test_fuzzed_bodies_from_hypothesis_never_crash(gw):
    from hypothesis import given, settings, strategies as st, HealthCheck

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(["chirpstack-mqtt", "tts-mqtt", "chirpstack-http", "tts-webhook"]), st.binary(max_size=300))
    def check(kind, body):
        where = cs_topic(EUI) if kind == "chirpstack-mqtt" else (
            "v3/vistelse@city/devices/node-0002/up" if kind == "tts-mqtt" else "up")
        r = run(gw, kind, where, body)
        assert r["outcome"] in ("rejected", "ignored") and r.get("reason")
        assert r.get("reason") != "internal_error"
    check()


def test_status_and_log_events_are_kept(gw):
    status = chirpstack.integration.StatusEvent(deduplication_id="s1", margin=7, battery_level=87.5)
    status.device_info.application_id = APP_ID
    status.device_info.dev_eui = EUI.hex()
    assert run(gw, "chirpstack-mqtt", cs_topic(EUI, "status"), status.SerializeToString())["event"] == "status"
    log = chirpstack.integration.LogEvent(level=chirpstack.integration.WARNING,
                                          code=chirpstack.integration.UPLINK_F_CNT_RETRANSMISSION,
                                          description="frame-counter did not increment")
    log.device_info.application_id = APP_ID
    log.device_info.dev_eui = EUI.hex()
    assert run(gw, "chirpstack-mqtt", cs_topic(EUI, "log"), cs_json(log))["event"] == "log"
    info = chirpstack.integration.LogEvent(level=chirpstack.integration.INFO, description="nothing")
    info.device_info.application_id = APP_ID
    info.device_info.dev_eui = EUI.hex()
    assert run(gw, "chirpstack-mqtt", cs_topic(EUI, "log"), cs_json(info))["outcome"] == "ignored"
    events = gw.store.events(EUI.hex())
    assert [e["kind"] for e in events] == ["log", "status"]
    assert events[0]["body"]["code"] == "UPLINK_F_CNT_RETRANSMISSION"
    assert events[1]["body"]["battery_level"] == 87.5 and events[1]["body"]["margin"] == 7
    # an event for a device of another application in the same network server is quarantined
    status.device_info.application_id = "11111111-2222-3333-4444-555555555555"
    r = run(gw, "chirpstack-mqtt", cs_topic(EUI, "status", app=status.device_info.application_id),
            status.SerializeToString())
    assert r["reason"] == "application_mismatch"


def test_junk_is_kept_once_truncated_and_quarantine_is_bounded(gw, tmp_path):
    """A 10 MB message once grew the database by 42 MB (kept in full in raw uplinks and quarantine)."""
    db = str(tmp_path / "gw.sqlite")
    on_file = gw.stores.backend == "sqlite"

    def size():
        return sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))

    def query(sql):
        return gw.store._fetch(sql)
    before = size() if on_file else 0
    junk = b"{" + b"x" * (10 * 1024 * 1024)
    result = run(gw, "chirpstack-mqtt", cs_topic(EUI), junk)
    assert result["outcome"] == "rejected"
    unknown = chirpstack_uplink(bytes.fromhex("70b3d57ed00000ff"), b"\x00" * 50, 1)
    assert run(gw, "chirpstack-mqtt", cs_topic(bytes.fromhex("70b3d57ed00000ff")),
               cs_json(unknown) + b" " * (2 * 1024 * 1024))["outcome"] == "rejected"
    if on_file:
        assert size() - before < 1024 * 1024
    rows = query("SELECT length(body) AS n, detail FROM quarantine")
    assert len(rows) == 2 and all(r["n"] <= 64 * 1024 for r in rows)
    assert any("10485761 bytes" in (r["detail"] or "") for r in rows)
    raw_bodies = query("SELECT count(*) AS n FROM uplinks WHERE body IS NOT NULL AND outcome='rejected'")[0]["n"]
    assert raw_bodies == 0                                   # kept once: in the quarantine
    # bounded in bytes (oldest go first) and by age
    for k in range(40):
        run(gw, "chirpstack-mqtt", cs_topic(EUI), b"{" + bytes([65 + k % 26]) * 60000)
    newest = query("SELECT max(id) AS n FROM quarantine")[0]["n"]
    assert gw.store.purge_quarantine(time.time() - 86400, 1024 * 1024)["over_size"] > 0
    total = query("SELECT sum(coalesce(length(body),0) + length(coalesce(detail,''))) AS n FROM quarantine")[0]["n"]
    assert 1024 * 1024 - 70000 < total <= 1024 * 1024          # no more went than needed
    assert query("SELECT max(id) AS n FROM quarantine")[0]["n"] == newest
    left = gw.store.count("quarantine")
    assert gw.store.purge_quarantine(time.time() + 1, 1 << 30)["old"] == left > 0
    assert gw.store.count("quarantine") == 0


@pytest.mark.parametrize("heights", [False, True])
def test_prepared_report_json_is_the_dicts_json(heights):
    import json
    import vistelse_codec
    from vistelse_gateway.pipeline import content_hash, prepare, report_data_json
    payload = frame(report(4, intervals=2, heights=heights), EUI)
    body = cs_json(chirpstack_uplink(EUI, payload, 9))
    rep = prepare("chirpstack-mqtt", cs_topic(EUI), body)[2]
    whole = vistelse_codec.decode_uplink(payload, 1)          # the same report, not digested
    assert rep["zone_count"] == len(whole["intervals"][0]["zones"])
    for iv, full in zip(rep["intervals"], whole["intervals"]):
        assert "zones" not in iv and iv["content_hash"] == content_hash(full, whole["interval_s"])
        totals = [(70000 + k, 3 * k) for k in range(len(full["lines"]))]
        lines = [dict(l, total_in_ext=a, total_out_ext=b) for l, (a, b) in zip(full["lines"], totals)]
        data = {"zones": full["zones"], "lines": lines}
        if "height_classes" in full:
            data["height_classes"] = full["height_classes"]
        assert report_data_json(iv, totals) == json.dumps(data, separators=(",", ":"))


# --- receipts ------------------------------------------------------------------

def test_receipt_when_a_gap_appears_and_late_intervals_are_stored_once(gw):
    import vistelse_codec
    sent = []
    gw.receipt_policy = {"max_per_day": 2, "min_gap_min": 60}
    gw.on_receipt.append(lambda eui, device, frame: sent.append(frame))
    t0 = 1767225600
    cs(gw, report(0), 1, when=t0)
    cs(gw, report(1), 2, when=t0 + 300)
    assert sent == []                                          # nothing missing, not yet due
    r = cs(gw, report(3), 3, when=t0 + 900)                    # 2 never arrived
    assert r["receipt"] is not None and len(sent) == 1
    got = vistelse_codec.decode_downlink(sent[0], 3, dev_eui=EUI, key=KEY)
    assert got["next_seq"] == 2 and got["stored_seq"] == [3] and got["receipt"] == 1
    r = cs(gw, report(2), 4, when=t0 + 1200)                   # sent again: stored once, in its place
    assert r["recovered"] == 1 and r["stored"] == 1
    assert cs(gw, report(2), 5, when=t0 + 1300)["outcome"] == "duplicate"
    assert [x["seq"] for x in sorted(gw.store.reports(), key=lambda x: x["seq"])] == [0, 1, 2, 3]
    cs(gw, report(5), 6, when=t0 + 1500)                       # a new gap, but too soon after the last receipt
    assert len(sent) == 1
    cs(gw, report(7), 7, when=t0 + 5000)
    cs(gw, report(9), 8, when=t0 + 9000)                       # the second of the day...
    cs(gw, report(11), 9, when=t0 + 13000)                     # ...and no third
    assert len(sent) == 2
    assert gw.metrics.get("vistelse_gateway_receipts_sent_total") == 2
    assert gw.metrics.get("vistelse_gateway_intervals_recovered_total") == 1
    state = next(d["state"] for d in gw.store.overview() if d["dev_eui"] == EUI.hex())
    from vistelse_gateway import metrics, receipts
    assert receipts.missing_count(state["receipts"]) == 4      # 4, 6, 8, 10
    text = metrics.render(gw.metrics, gw.store, []).decode()
    assert 'vistelse_gateway_device_intervals_missing{dev_eui="%s",site="Torget"} 4.0' % EUI.hex() in text


# --- ingest worker processes -----------------------------------------------------

def test_worker_processes_prepare_and_a_killed_worker_loses_nothing(tmp_path):
    import signal
    store = SqliteStore(str(tmp_path / "g.sqlite"))
    store.put_device({"dev_eui": EUI.hex(), "network": "chirpstack", "application": APP_ID}, KEY, "test")
    pipe = Pipeline(store, Metrics(), workers=2, batch_max=50)
    results = []
    pipe.start()
    try:
        def send(seqs):
            for seq in seqs:
                body = cs_json(chirpstack_uplink(EUI, frame(report(seq), EUI), seq + 1))
                pipe.submit("chirpstack-mqtt", cs_topic(EUI), body, ack=results.append)
        send(range(0, 60))
        deadline = time.time() + 60
        while len(results) < 60 and time.time() < deadline:
            time.sleep(0.05)
        first = pipe.pool[0].process
        os.kill(first.pid, signal.SIGKILL)
        first.join(10)
        send(range(60, 120))
        while len(results) < 120 and time.time() < deadline:
            time.sleep(0.05)
        assert pipe.pool[0].process is not first and pipe.pool[0].process.is_alive()    # started afresh
    finally:
        pipe.stop()
        store_reports = [r["seq"] for r in store.reports()]
        store.close()
    assert [r["outcome"] for r in results] == ["accepted"] * 120
    assert sorted(store_reports) == list(range(120))
