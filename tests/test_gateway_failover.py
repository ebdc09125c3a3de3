"""Failover: three gateway instances on one PostgreSQL database behind an MQTT v5
shared subscription on a real mosquitto. While 500 devices' uplinks stream in,
instance `a` is killed with kill -9 at random moments and restarted, and
instance `c` is stopped for good halfway. Every uplink the broker acknowledged
must be stored exactly once, reach each sink (webhook receivers on 127.0.0.1)
exactly once by id and in per-device commit order, and the access log must verify.

VISTELSE_FAILOVER_UPLINKS sets the number of uplinks (default 50,000).
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sink_servers import WebhookReceiver
from vistelse_gateway.store import open_store
from vistelse_gateway.testing import (APP_ID, KEY, Mosquitto, chirpstack_uplink, cs_topic, free_port,
                                      frame, mosquitto_path, report)

TOKEN = "operator-token-0123456789"
DEVICES = 500
UPLINKS = int(os.environ.get("VISTELSE_FAILOVER_UPLINKS", "50000"))


@pytest.fixture
def broker():
    if mosquitto_path() is None:
        if os.geteuid() == 0 or os.environ.get("CI"):
            pytest.fail("mosquitto is not installed: run tools/setup.sh (apt-get install mosquitto)")
        pytest.skip("mosquitto is not installed and this is not root")
    b = Mosquitto().start()
    yield b
    b.stop()


class Instance:
    def __init__(self, name, tmp_path, url, broker, sinks):
        self.name = name
        self.port = free_port()
        state = tmp_path / ("state-" + name)
        state.mkdir()
        self.cfg = tmp_path / ("gateway-%s.toml" % name)
        sink_toml = "".join('[[sink]]\nname = "%s"\ntype = "webhook"\nurl = "%s/hook"\ntimeout_s = 5\n'
                            % (sink_name, s.url) for sink_name, s in sinks)
        self.cfg.write_text("""
[gateway]
state_dir = "%s"
instance = "%s"
log_level = "warning"
[store]
url = "%s"
[ingest]
batch_max = 500
workers = 0
[outbox]
backoff_min_s = 0.05
backoff_max_s = 0.5
[[source]]
type = "chirpstack-mqtt"
host = "127.0.0.1"
port = %d
shared_group = "vistelse"
topics = ["application/+/device/+/event/up"]
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[http]
listen = "127.0.0.1:%d"
[[auth.operator]]
name = "ops"
token = "%s"
%s""" % (state, name, url, broker.port, self.port, TOKEN, sink_toml))
        self.proc = None
        self.log = open(tmp_path / ("gateway-%s.log" % name), "ab")

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "vistelse_gateway.service", "--config", str(self.cfg)],
                                     stdout=self.log, stderr=self.log)

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def get(self, path, token=TOKEN):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path))
        if token:
            req.add_header("Authorization", "Bearer " + token)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read().decode()

    def ready(self):
        try:
            return json.loads(self.get("/healthz", token=None))["ok"]
        except OSError:
            return False


def wait_for(predicate, timeout, what, progress=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what + (" (%s)" % progress() if progress else ""))


def test_three_instances_kill_9_and_stop_lose_and_duplicate_nothing(broker, postgres_server, tmp_path):
    url = postgres_server.create_database()
    store = open_store({"url": url}, migrate=True)
    euis = [bytes.fromhex("70b3d57e%08x" % (0x200000 + d)) for d in range(DEVICES)]
    for eui in euis:
        store.put_device({"dev_eui": eui.hex(), "network": "chirpstack", "application": APP_ID}, KEY, "test")
    per_device = UPLINKS // DEVICES
    messages = []
    for seq in range(per_device):
        for eui in euis:
            body = chirpstack_uplink(eui, frame(report(seq, visits=seq % 9, total_in=2 * seq, total_out=seq), eui),
                                     seq + 1).SerializeToString()
            messages.append((cs_topic(eui), body, (eui.hex(), seq)))

    sinks = [("hook-1", WebhookReceiver()), ("hook-2", WebhookReceiver())]
    insts = {n: Instance(n, tmp_path, url, broker, sinks) for n in "abc"}
    rnd = random.Random(13)
    try:
        for inst in insts.values():
            inst.start()
        wait_for(lambda: all(i.ready() for i in insts.values()), 60, "three instances")
        time.sleep(1.0)                          # each has subscribed to the shared group

        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="failover-pub", protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(200)
        pub.max_queued_messages_set(0)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        infos = []
        stored = lambda: store.count("reports")   # noqa: E731
        kills = []

        def chaos():
            # kill -9 `a` at random moments while it runs, restart it; stop `c` for good halfway through.
            # The next kill waits until `a` serves again: on a loaded machine a restart takes longer than
            # the random pause, and kills during start-up only would leave the shared group's messages
            # queued for a session that never gets to take them (a machine that dies at every boot).
            c_stopped = False
            while stored() < len(messages):
                time.sleep(rnd.uniform(0.5, 3.0))
                insts["a"].kill9()
                kills.append(time.time())
                time.sleep(rnd.uniform(0.1, 1.0))
                insts["a"].start()
                wait_for(lambda: insts["a"].ready(), 120, "instance a serving after its restart")
                if not c_stopped and stored() >= len(messages) // 2:
                    assert insts["c"].stop() == 0
                    c_stopped = True
            if not c_stopped:
                assert insts["c"].stop() == 0
        chaos_thread = threading.Thread(target=chaos, daemon=True)
        chaos_thread.start()
        for topic, body, _ in messages:
            infos.append(pub.publish(topic, body, qos=1))
        for info in infos:
            info.wait_for_publish(120)
        assert all(info.is_published() for info in infos)     # the broker acknowledged every uplink
        pub.disconnect()
        pub.loop_stop()

        wait_for(lambda: stored() >= len(messages), 600, "every uplink stored",
                 lambda: "%d of %d stored, instances up: %s" % (stored(), len(messages),
                                                                 [n for n, i in insts.items() if i.proc.poll() is None]))
        chaos_thread.join(60)
        assert not chaos_thread.is_alive() and len(kills) >= 2
        wait_for(lambda: insts["a"].ready(), 30, "instance a back")
        wait_for(lambda: all(len(s.store) >= len(messages) for _, s in sinks), 300, "every report forwarded")
        wait_for(lambda: all(st["depth"] == 0 for st in store.outbox_stats([n for n, _ in sinks],
                                                                           time.time()).values()),
                 60, "outboxes settled")

        # stored exactly once: one row per (device, seq), nothing quarantined
        reports = store._conn().execute("SELECT id, dev_eui, seq FROM reports ORDER BY id").fetchall()
        assert len(reports) == len(messages)
        assert {(r["dev_eui"], r["seq"]) for r in reports} == {m[2] for m in messages}
        assert store.count("quarantine") == 0
        # forwarded exactly once per sink by id, in per-device commit order
        commit_order = {"vistelse:%s:%d" % (r["dev_eui"], r["seq"]): r["id"] for r in reports}
        for name, sink in sinks:
            assert set(sink.store) == set(commit_order), name
            firsts, seen = {}, set()
            for item_id in sink.arrivals:
                if item_id not in seen:
                    seen.add(item_id)
                    firsts.setdefault(item_id.rsplit(":", 1)[0], []).append(commit_order[item_id])
            for device, ids in firsts.items():
                assert ids == sorted(ids), (name, device)
            # redeliveries happen only for batches in flight at a kill -9
            redelivered = len(sink.arrivals) - len(sink.store)
            assert redelivered <= len(kills) * 2 * 100, (name, redelivered)
        # one access-log chain, whoever wrote; each instance's configuration recorded once, not per restart
        assert store.verify_access_log()["ok"]
        actions = [e["action"] for e in store.access_log(limit=10000)]
        assert actions.count("config.first") == 3 and actions.count("config.change") == 0
        # per-instance health and metrics
        for name in "ab":
            health = json.loads(insts[name].get("/healthz", token=None))
            assert health["ok"] and health["instance"] == name
            assert 'vistelse_gateway_instance_info{gateway_instance="%s"} 1' % name in insts[name].get("/metrics")
        # the last instance to stop keeps its subscription: what is published while none runs waits
        assert insts["b"].stop() == 0           # a still runs: b leaves the group
        assert insts["a"].stop() == 0           # the last one keeps its session
        late = [(cs_topic(eui), chirpstack_uplink(eui, frame(report(per_device), eui), per_device + 1)
                 .SerializeToString()) for eui in euis[:20]]
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="failover-pub-late", protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        late_infos = [pub.publish(t, b, qos=1) for t, b in late]
        for info in late_infos:
            info.wait_for_publish(30)
        pub.disconnect()
        pub.loop_stop()
        insts["a"].start()
        wait_for(lambda: stored() == len(messages) + len(late), 60, "uplinks published while no instance ran")
        print("failover: %d uplinks, %d kill -9, redelivered per sink %s" % (
            len(messages), len(kills), [len(s.arrivals) - len(s.store) for _, s in sinks]))
    finally:
        for inst in insts.values():
            if inst.proc and inst.proc.poll() is None:
                inst.proc.kill()
                inst.proc.wait()
        for _, s in sinks:
            s.down()
        store.close()
