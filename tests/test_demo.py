"""`vistelse demo` end to end: virtual nodes (the firmware on simulated
time) → modem emulators → ChirpStack v4 MQTT events on a real broker → the
gateway's store, sink and pages. Both brokers: mosquitto and the embedded
amqtt fallback."""
import argparse
import base64
import datetime
import json
import os
import threading
import urllib.request
from zoneinfo import ZoneInfo

import pytest

from vistelse_tools import demo


def fetch(url, token=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Basic " + base64.b64encode(("demo:" + token).encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read().decode()


def last_lunch_hour():
    """The latest 12:30 in Stockholm that has passed: the run covers 12:05-12:30, the
    demo places' busiest hour. (At night a node rightly holds quiet intervals until
    k people have been seen, docs/privacy.md, so how many reports a run gives
    would depend on when the test runs.)"""
    now = datetime.datetime.now(ZoneInfo("Europe/Stockholm"))
    end = now.replace(hour=12, minute=30, second=0, microsecond=0)
    if end > now:
        end -= datetime.timedelta(days=1)
    return end.timestamp()


def test_end_is_checked():
    assert demo.end_time("2026-06-03T12:30:00+02:00") == 1780482600
    for bad, why in (("noon", "not an ISO 8601 time"), ("2026-06-03T12:30", "give the offset"),
                     ("2999-01-01T00:00Z", "lies in the future")):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            demo.end_time(bad)


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_demo_reports_reach_store_sink_and_pages(tmp_path, broker):
    args = argparse.Namespace(minutes=25, speed=250, nodes=2, interval=300, port=0, broker=broker,
                              loss=0.05, workdir=str(tmp_path / "demo"), end=last_lunch_hour())
    d = demo.Demo(args)
    try:
        d.start()
        d.run(threading.Event())
        reports = d.gateway.store.reports()
        by_device = {}
        for r in reports:
            by_device.setdefault(r["dev_eui"], []).append(r)
        # both nodes: a 25-minute run has four finished 5-minute intervals each
        assert set(by_device) == {n.dev_eui for n in d.nodes}
        assert all(len(rs) >= 3 for rs in by_device.values()), {k: len(v) for k, v in by_device.items()}
        assert d.stored()[1] == 0                                   # nothing rejected
        assert " recovered " in d.progress()                        # what receipts brought back
        # the platform got what the store has, but what waits behind a lost interval
        # (held back until a receipt brings it again, docs/gateway.md "Receipts")
        with open(d.sink.path) as f:
            items = [json.loads(line) for line in f]
        assert items and d.sink.count >= d.forwardable() and d.forwardable() >= 2
        base = "http://127.0.0.1:%d" % d.gateway.web.port
        assert fetch(base + "/healthz")[0] == 200
        status, page = fetch(base + "/data", d.token)
        assert status == 200 and "<svg" in page
        # simulated time lies in the past: no node is "stale", and the page does not contradict itself
        status, text = fetch(base + "/api/status", d.token)
        overview = json.loads(text)
        assert not [dev["dev_eui"] for dev in overview["devices"] if dev["stale"]]
        assert overview["problems"] == []
        status, page = fetch(base + "/register")
        assert status == 200 and "Torget" in page and "Passagen" in page
        # the demo's uplinks carried aggregates only: small frames
        assert all(u["fport"] == 1 and len(u["data"]) <= 242 for n in d.nodes for u in n.vn.uplinks)
    finally:
        d.stop()
