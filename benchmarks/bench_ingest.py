"""Sustained ingest: mosquitto -> gateway -> committed (tag verified), in SQLite
or in PostgreSQL with one or several instances, against the rate at which a
bare paho subscriber drains the same stream from the same broker.

Both consumers get the same backlog: N ChirpStack v4 uplink events (JSON
marshaling by default) from D registered devices, published at QoS 1 into
their persistent sessions while they are offline; then each consumer is
started and timed from its first to its last message (the gateway: first to
last committed report, polled in the store). The gateway runs as its own
process(es), as in production, durably: SQLite synchronous=FULL (fsync per
commit); PostgreSQL with fsync on, several instances behind a shared
subscription ($share/bench/...), one session each.

Then a live phase: --live-messages more published at --live-rate per second
to the running gateway(s); latency publish -> stored (median, p99).

    .venv/bin/python benchmarks/bench_ingest.py [--messages 20000] [--devices 200] [--protobuf]
    .venv/bin/python benchmarks/bench_ingest.py --store postgres --instances 3
    .venv/bin/python benchmarks/bench_ingest.py --profile /tmp/gw.txt     # py-spy --gil, collapsed stacks

Prints one JSON line with uplinks/s, the bare drain rate, the ratio, latency and loss.
"""
import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vistelse_gateway.config import MQTT_CLIENT, SCHEMA
from vistelse_gateway.store import open_store
from vistelse_gateway.store.sqlite import SqliteStore
from vistelse_gateway.testing import (APP_ID, KEY, Mosquitto, Postgres, chirpstack_uplink, cs_json, cs_topic, frame,
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
        out.append((cs_topic(eui), msg.SerializeToString() if protobuf else cs_json(msg), (eui.hex(), seq)))
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


def session(port, client_id, receive_maximum, on_message=None):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = receive_maximum
    subscribed = threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe(TOPIC, qos=1)
    if on_message:
        c.on_message = on_message
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    return c, subscribed


def cpu_seconds(pid):
    """CPU time (user + system) of a process and of its children (the ingest worker), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / tick
        children = []
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                children += [int(c) for c in f.read().split()]
    except OSError:
        return 0.0, 0.0
    return own, sum(cpu_seconds(c)[0] for c in children)


def bare_drain(port, messages, receive_maximum, broker_pid):
    # create the persistent session, go offline, let the backlog queue up, then drain
    c, sub = session(port, "bench-bare", receive_maximum)
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
    cpu0, broker0 = time.process_time(), cpu_seconds(broker_pid)[0]
    c, _ = session(port, "bench-bare", receive_maximum, on_message)
    done.wait(600)
    cpu, broker_cpu = time.process_time() - cpu0, cpu_seconds(broker_pid)[0] - broker0
    c.disconnect()
    c.loop_stop()
    return {"received": len(times), "seconds": times[-1] - times[0], "rate": (len(times) - 1) / (times[-1] - times[0]),
            "cpu_us": cpu / len(times) * 1e6, "broker_cpu_us": broker_cpu / len(times) * 1e6}


class Gateways:
    """N gateway processes (instances a, b, c, ...) on one store: the SQLite file, or a
    PostgreSQL database behind an MQTT v5 shared subscription (one session each)."""

    def __init__(self, port, euis, workdir, args, pg=None):
        self.n = args.instances
        self.pg_url = None
        self.procs = []
        self.spy = None
        self.profile = args.profile
        state = os.path.join(workdir, "state")
        os.makedirs(state)
        if pg is not None:
            self.pg_url = pg.create_database()
            store = open_store({"url": self.pg_url}, migrate=True)
        else:
            self.db_path = os.path.join(state, "gateway.sqlite")
            store = SqliteStore(self.db_path)
        for eui in euis:
            store.put_device({"dev_eui": eui.hex(), "network": "chirpstack", "application": APP_ID}, KEY, "bench")
        store.close()
        self.cmds = []
        for k in range(self.n):
            name = "abcdefgh"[k]
            cfg = os.path.join(workdir, "gateway-%s.toml" % name)
            with open(cfg, "w") as f:
                f.write('[gateway]\nstate_dir = "state"\nlog_level = "warning"\ninstance = "%s"\n'
                        '[ingest]\nbatch_max = %d\nworkers = %d\n[http]\nenabled = false\n'
                        % (name, args.batch_max, args.workers))
                if self.pg_url:
                    f.write('[store]\nurl = "%s"\n' % self.pg_url)
                f.write('[[source]]\ntype = "chirpstack-mqtt"\nhost = "127.0.0.1"\nport = %d\ntopics = ["%s"]\n'
                        % (port, TOPIC))
                if self.pg_url:
                    f.write('shared_group = "bench"\n')
                else:
                    f.write('client_id = "bench-gateway"\n')
                f.write("receive_maximum = %d\n" % args.receive_maximum)
            self.cmds.append([sys.executable, "-m", "vistelse_gateway.service", "--config", cfg])

    def count(self, sql="SELECT count(*) FROM reports"):
        if self.pg_url:
            import psycopg
            with psycopg.connect(self.pg_url) as conn:
                return conn.execute(sql).fetchone()[0]
        db = sqlite3.connect(self.db_path, timeout=10)
        try:
            return db.execute(sql).fetchone()[0]
        finally:
            db.close()

    def rows(self, sql):
        if self.pg_url:
            import psycopg
            with psycopg.connect(self.pg_url) as conn:
                return conn.execute(sql).fetchall()
        db = sqlite3.connect(self.db_path, timeout=10)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def create_sessions(self):
        """Subscribe once and go offline with the subscription kept (kill -9: a graceful stop
        would leave the shared group), so that a backlog queues up for the sessions."""
        procs = [subprocess.Popen(c) for c in self.cmds]
        time.sleep(3.0)
        for p in procs:
            p.kill()
            p.wait(20)

    def start(self):
        self.procs = [subprocess.Popen(c) for c in self.cmds]
        if self.profile:   # sample every thread and the worker processes: py-spy's collapsed stacks
            # --gil: the thread holding each process's interpreter lock, i.e. where its CPU goes
            self.spy = subprocess.Popen(["py-spy", "record", "--gil", "--pid", str(self.procs[0].pid), "--subprocesses",
                                         "--threads", "--format", "raw", "--rate", "250", "-o", self.profile],
                                        stdout=subprocess.DEVNULL)

    def stop(self):
        codes = []
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            codes.append(p.wait(60))
        if self.spy is not None:
            self.spy.wait(60)
        return codes


def gateway_drain(port, messages, gws, broker_pid):
    """Backlog: every message waits in the sessions; time first to last committed report."""
    gws.create_sessions()
    before = gws.count()
    publish_all(port, messages)
    n = before + len(messages)
    gws.start()
    cpu0 = None
    t0 = c0 = None
    deadline = time.time() + 900
    while time.time() < deadline:
        c = gws.count()
        now = time.perf_counter()
        if t0 is None and c > before:
            t0, c0 = now, c
            # CPU from here on: the same window as the rate (start-up and imports left out)
            cpu0 = [cpu_seconds(p.pid) for p in gws.procs]
            broker0 = cpu_seconds(broker_pid)[0]
        if c >= n:
            t1 = now
            break
        time.sleep(0.02)
    else:
        raise RuntimeError("the gateway stored only %d of %d" % (gws.count(), n))
    # CPU per uplink over the drain (first to last committed report), main processes and their workers
    cpu1 = [cpu_seconds(p.pid) for p in gws.procs]
    broker_cpu = cpu_seconds(broker_pid)[0] - broker0
    main_cpu = sum(b[0] - a[0] for a, b in zip(cpu0, cpu1))
    worker_cpu = sum(b[1] - a[1] for a, b in zip(cpu0, cpu1))
    return {"seconds": t1 - t0, "rate": (n - c0) / (t1 - t0), "main_cpu_us": main_cpu / (n - c0) * 1e6,
            "worker_cpu_us": worker_cpu / (n - c0) * 1e6, "broker_cpu_us": broker_cpu / (n - c0) * 1e6}


def live_latency(port, messages, gws, rate):
    """Messages published at `rate`/s to running gateways: publish -> stored_at (taken in the
    committing transaction, at most one batch before its COMMIT), median and p99."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-live", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    sent = {}
    start = time.time()
    infos = []
    for k, (topic, body, key) in enumerate(messages):
        delay = start + k / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        sent[key] = time.time()
        infos.append(c.publish(topic, body, qos=1))
    for i in infos:
        i.wait_for_publish(120)
    c.disconnect()
    c.loop_stop()
    want = {k for _, _, k in messages}
    deadline = time.time() + 300
    while time.time() < deadline:
        rows = gws.rows("SELECT dev_eui, seq, stored_at FROM reports WHERE stored_at >= %f" % (start - 1))
        got = {(r[0], r[1]): r[2] for r in rows if (r[0], r[1]) in want}
        if len(got) == len(want):
            break
        time.sleep(0.5)
    else:
        raise RuntimeError("live phase: stored %d of %d" % (len(got), len(want)))
    lat = sorted(got[k] - sent[k] for k in want)
    return {"rate": rate, "messages": len(lat), "median_ms": round(1000 * statistics.median(lat), 1),
            "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--batch-max", type=int, default=SCHEMA["properties"]["ingest"]["properties"]["batch_max"]["default"],
                    help="[ingest] batch_max (default: the gateway's)")
    ap.add_argument("--workers", type=int, default=1, help="[ingest] workers (parse/decode processes)")
    ap.add_argument("--protobuf", action="store_true", help="protobuf marshaling instead of JSON")
    ap.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                    help="postgres: a throwaway cluster (fsync on) on a Unix socket, instances share it")
    ap.add_argument("--instances", type=int, default=1, help="gateway processes (postgres only for more than 1)")
    ap.add_argument("--live-rate", type=float, default=1000.0, help="messages/s in the latency phase")
    ap.add_argument("--live-messages", type=int, default=5000, help="messages in the latency phase (0: skip)")
    ap.add_argument("--receive-maximum", type=int, default=MQTT_CLIENT["receive_maximum"]["default"],
                    help="[[source]] receive_maximum (MQTT v5 in-flight window), the bare subscriber's too "
                         "(default: the gateway's)")
    ap.add_argument("--profile", metavar="FILE", help="record the first gateway with py-spy (collapsed stacks)")
    args = ap.parse_args()
    if args.instances > 1 and args.store != "postgres":
        ap.error("several instances need --store postgres")
    euis, messages = build_messages(args.messages + args.live_messages, args.devices, args.protobuf)
    backlog, live = messages[:args.messages], messages[args.messages:]
    work = tempfile.mkdtemp(prefix="vistelse-bench-")
    broker = Mosquitto().start()
    pg = Postgres().start() if args.store == "postgres" else None
    try:
        bare = bare_drain(broker.port, [(t, b) for t, b, _ in backlog], args.receive_maximum, broker.proc.pid)
        gws = Gateways(broker.port, euis, work, args, pg)
        gw = gateway_drain(broker.port, [(t, b) for t, b, _ in backlog], gws, broker.proc.pid)
        latency = live_latency(broker.port, live, gws, args.live_rate) if live else None
        codes = gws.stop()
        distinct = gws.count("SELECT count(DISTINCT dev_eui || ':' || seq) FROM reports")
        quarantined = gws.count("SELECT count(*) FROM quarantine")
    finally:
        broker.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "store": args.store, "instances": args.instances,
        "messages": args.messages, "devices": args.devices, "marshaling": "protobuf" if args.protobuf else "json",
        "workers": args.workers, "batch_max": args.batch_max,
        "gateway_uplinks_per_s": round(gw["rate"], 1), "bare_drain_per_s": round(bare["rate"], 1),
        "ratio": round(gw["rate"] / bare["rate"], 3), "latency": latency,
        "cpu_us_per_uplink": {"bare_subscriber": round(bare["cpu_us"], 1), "gateway_main": round(gw["main_cpu_us"], 1),
                              "gateway_workers": round(gw["worker_cpu_us"], 1),
                              "broker_in_bare_drain": round(bare["broker_cpu_us"], 1),
                              "broker_in_gateway_drain": round(gw["broker_cpu_us"], 1)},
        "loss": len(messages) - distinct, "quarantined": quarantined, "exit_codes": codes,
        "bare_received": bare["received"], "python": platform.python_version(), "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return 0 if result["loss"] == 0 and result["quarantined"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
