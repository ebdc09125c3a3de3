"""Sustained ingest: mosquitto -> gateway -> committed in SQLite (tag verified),
against the rate at which a bare paho subscriber drains the same stream from
the same broker.

Both consumers get the same backlog: N ChirpStack v4 uplink events (JSON
marshaling by default) from D registered devices, published at QoS 1 into
their persistent sessions while they are offline; then each consumer is
started and timed from its first to its last message (the gateway: first to
last committed report, polled in SQLite). The gateway runs as its own
process, as in production, with synchronous=FULL (fsync per commit).

    .venv/bin/python benchmarks/bench_ingest.py [--messages 20000] [--devices 200] [--protobuf]

Prints one JSON line with uplinks/s, the bare drain rate, the ratio and loss.
"""
import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vistelse_gateway.store.sqlite import SqliteStore
from vistelse_gateway.testing import (APP_ID, KEY, Mosquitto, chirpstack_uplink, cs_json, cs_topic, frame,
                                      report)

TOPIC = "application/+/device/+/event/up"


def build_messages(n, devices, protobuf):
    euis = [bytes.fromhex("70b3d57e%08x" % (0x100000 + d)) for d in range(devices)]
    out = []
    for k in range(n):
        eui = euis[k % devices]
        seq = k // devices
        msg = chirpstack_uplink(eui, frame(report(seq, visits=seq % 9, total_in=seq * 2, total_out=seq), eui),
                                seq + 1)
        out.append((cs_topic(eui), msg.SerializeToString() if protobuf else cs_json(msg)))
    return euis, out


def publish_all(port, messages):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(t, b, qos=1) for t, b in messages]
    for i in infos:
        i.wait_for_publish(120)
    ok = all(i.is_published() for i in infos)
    c.disconnect()
    c.loop_stop()
    if not ok:
        raise RuntimeError("the broker did not acknowledge every message")


def session(port, client_id, on_message=None):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 1000
    subscribed = threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe(TOPIC, qos=1)
    if on_message:
        c.on_message = on_message
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    return c, subscribed


def bare_drain(port, messages):
    # create the persistent session, go offline, let the backlog queue up, then drain
    c, sub = session(port, "bench-bare")
    sub.wait(10)
    c.disconnect()
    c.loop_stop()
    publish_all(port, messages)
    times = []
    done = threading.Event()
    n = len(messages)

    def on_message(cl, u, m):
        times.append(time.perf_counter())
        if len(times) == n:
            done.set()
    c, _ = session(port, "bench-bare", on_message)
    done.wait(600)
    c.disconnect()
    c.loop_stop()
    return {"received": len(times), "seconds": times[-1] - times[0], "rate": (len(times) - 1) / (times[-1] - times[0])}


def gateway_drain(port, messages, euis, workdir, batch_max, workers):
    state = os.path.join(workdir, "state")
    os.makedirs(state)
    store = SqliteStore(os.path.join(state, "gateway.sqlite"))
    for eui in euis:
        store.put_device({"dev_eui": eui.hex(), "network": "chirpstack", "application": APP_ID}, KEY, "bench")
    store.close()
    cfg = os.path.join(workdir, "gateway.toml")
    with open(cfg, "w") as f:
        f.write('[gateway]\nstate_dir = "state"\nlog_level = "warning"\n[ingest]\nbatch_max = %d\nworkers = %d\n'
                '[http]\nenabled = false\n[[source]]\ntype = "chirpstack-mqtt"\nhost = "127.0.0.1"\nport = %d\n'
                'client_id = "bench-gateway"\ntopics = ["%s"]\n' % (batch_max, workers, port, TOPIC))
    cmd = [sys.executable, "-m", "vistelse_gateway.service", "--config", cfg]
    db_path = os.path.join(state, "gateway.sqlite")

    def count():
        db = sqlite3.connect(db_path, timeout=10)
        try:
            return db.execute("SELECT count(*) FROM reports").fetchone()[0]
        finally:
            db.close()
    # first run only creates the persistent session
    proc = subprocess.Popen(cmd)
    time.sleep(2.0)
    proc.terminate()
    proc.wait(20)
    publish_all(port, messages)
    n = len(messages)
    proc = subprocess.Popen(cmd)
    t0 = c0 = None
    deadline = time.time() + 900
    while time.time() < deadline:
        c = count()
        now = time.perf_counter()
        if t0 is None and c > 0:
            t0, c0 = now, c
        if c >= n:
            t1 = now
            break
        time.sleep(0.02)
    else:
        raise RuntimeError("the gateway stored only %d of %d" % (count(), n))
    proc.terminate()
    rc = proc.wait(30)
    db = sqlite3.connect(db_path)
    distinct = db.execute("SELECT count(DISTINCT dev_eui || ':' || seq) FROM reports").fetchone()[0]
    quarantined = db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    db.close()
    return {"stored": n, "distinct": distinct, "quarantined": quarantined, "seconds": t1 - t0,
            "rate": (n - c0) / (t1 - t0), "exit_code": rc}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--batch-max", type=int, default=500)
    ap.add_argument("--workers", type=int, default=1, help="[ingest] workers (parse/decode processes)")
    ap.add_argument("--protobuf", action="store_true", help="protobuf marshaling instead of JSON")
    args = ap.parse_args()
    euis, messages = build_messages(args.messages, args.devices, args.protobuf)
    work = tempfile.mkdtemp(prefix="vistelse-bench-")
    broker = Mosquitto().start()
    try:
        bare = bare_drain(broker.port, messages)
        gw = gateway_drain(broker.port, messages, euis, work, args.batch_max, args.workers)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "messages": args.messages, "devices": args.devices, "marshaling": "protobuf" if args.protobuf else "json",
        "workers": args.workers, "batch_max": args.batch_max,
        "gateway_uplinks_per_s": round(gw["rate"], 1), "bare_drain_per_s": round(bare["rate"], 1),
        "ratio": round(gw["rate"] / bare["rate"], 3),
        "loss": args.messages - gw["distinct"], "quarantined": gw["quarantined"],
        "bare_received": bare["received"], "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    print(json.dumps(result))
    return 0 if result["loss"] == 0 and result["quarantined"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
