"""End to end: real mosquitto, the gateway as a separate process (killed with -9
mid-stream), real HTTP sinks on 127.0.0.1 that fail on purpose. Every uplink the
broker acknowledged must end up stored once and delivered to every sink once."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from prometheus_client.parser import text_string_to_metric_families
from sink_servers import FrostServer, NgsiLdBroker, WebhookReceiver
from vistelse_gateway.testing import (APP_ID, KEY, Mosquitto, chirpstack_uplink, cs_json, cs_topic,
                                      free_port, frame, mosquitto_path, report, tts_uplink)

TOKEN = "operator-token-0123456789"
INGEST = "ingest-token-0123456789ab"
EUIS = [bytes.fromhex("70b3d57ed00000%02x" % i) for i in range(1, 5)]
TTS_EUI = bytes.fromhex("70b3d57ed00000a1")


@pytest.fixture
def broker():
    if mosquitto_path() is None:
        if os.geteuid() == 0:
            pytest.fail("mosquitto is not installed: run tools/setup.sh (apt-get install mosquitto)")
        pytest.skip("mosquitto is not installed and this is not root")
    b = Mosquitto().start()
    yield b
    b.stop()


def write_config(tmp_path, broker, sinks, web_port):
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    sink_toml = ""
    for kind, url in sinks:
        sink_toml += '[[sink]]\ntype = "%s"\nurl = "%s"\ntimeout_s = 1\n' % (kind, url)
        if kind == "sensorthings":
            sink_toml += "batch = 10\n"
    sink_toml += ('[[sink]]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = %d\ntopic = "out/{site}/{dev_eui}"\n'
                  % broker.port)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text("""
[gateway]
state_dir = "state"
[ingest]
batch_max = 200
[outbox]
backoff_min_s = 0.05
backoff_max_s = 0.5
[[source]]
type = "chirpstack-mqtt"
host = "127.0.0.1"
port = %d
client_id = "gw-e2e"
reconnect_min_s = 0.2
reconnect_max_s = 1
[[source]]
type = "tts-mqtt"
host = "127.0.0.1"
port = %d
client_id = "gw-e2e-tts"
[http]
listen = "127.0.0.1:%d"
[[auth.operator]]
name = "ops"
token = "%s"
[[auth.ingest]]
name = "chirpstack"
token = "%s"
%s""" % (broker.port, broker.port, web_port, TOKEN, INGEST, sink_toml))
    devices = tmp_path / "devices.toml"
    text = ""
    for i, eui in enumerate(EUIS):
        text += ('[[device]]\ndev_eui = "%s"\nnetwork = "chirpstack"\napplication = "%s"\nsite = "Torget"\n'
                 'key_hex = "%s"\n[device.meta]\nzones = [{name = "benches"}]\nlines = [{name = "gate %d"}]\n'
                 'location = {lat = 59.33, lon = 18.06}\n' % (eui.hex(), APP_ID, KEY.hex(), i))
    # no location: SensorThings gets each zone's and line's geometry from the registry instead
    text += ('[[device]]\ndev_eui = "%s"\nnetwork = "tts"\napplication = "vistelse@city"\ntts_device_id = "node-00a1"\n'
             'site = "Parken"\nkey_hex = "%s"\n[device.meta]\nzones = [{name = "lawn", geometry = {type = "Polygon", '
             'coordinates = [[[18.0, 59.3], [18.001, 59.3], [18.001, 59.301], [18.0, 59.3]]]}}]\n'
             'lines = [{name = "path", geometry = {type = "LineString", coordinates = [[18.0, 59.3], [18.001, 59.3]]}}]\n'
             % (TTS_EUI.hex(), KEY.hex()))
    devices.write_text(text)
    return cfg, devices, state / "gateway.sqlite"


def gateway_cmd(cfg, *args):
    return [sys.executable, "-m", "vistelse_gateway.service", "--config", str(cfg), *args]


def count(db_path, sql="SELECT count(*) FROM reports"):
    try:
        db = sqlite3.connect(str(db_path), timeout=5)
        try:
            return db.execute(sql).fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return -1


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def get(port, path, token=TOKEN):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, resp.read().decode()


def test_kill_9_and_sink_outage_lose_nothing_and_duplicate_nothing(broker, tmp_path):
    ngsi, things, hook = NgsiLdBroker(), FrostServer(), WebhookReceiver()
    web_port = free_port()
    cfg, devices, db_path = write_config(
        tmp_path, broker, [("ngsi-ld", ngsi.url), ("sensorthings", things.url + "/v1.1"), ("webhook", hook.url)],
        web_port)
    subprocess.run(gateway_cmd(cfg, "device", "import", str(devices)), check=True, capture_output=True)

    # what the MQTT sink republishes, collected by a plain subscriber
    republished = {}
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="e2e-out", protocol=mqtt.MQTTv311, clean_session=False)
    sub.on_message = lambda c, u, m: republished.__setitem__(json.loads(m.payload)["id"], m.topic)
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("out/#", qos=1)
    sub.loop_start()

    # the sinks misbehave from the start
    ngsi.fail_next(3, 500)
    things.fail_next(2, 503)
    hook.slow_next(2, 1.5)      # client timeout (1 s), but the server still takes it: redelivery follows

    log = open(tmp_path / "gateway.log", "wb")
    gw = subprocess.Popen(gateway_cmd(cfg), stdout=log, stderr=subprocess.STDOUT)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="e2e-pub", protocol=mqtt.MQTTv311)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        wait_for(lambda: get(web_port, "/healthz", None)[0] == 200 if _up(web_port) else False, 20, "gateway up")
        per_device = 80
        expected = set()
        messages = []
        for n in range(per_device):
            for i, eui in enumerate(EUIS):
                seq = 1000 + n
                msg = chirpstack_uplink(eui, frame(report(seq, visits=n % 7, total_in=(2 * n) & 0xFFFF,
                                                          total_out=n), eui), n + 1)
                body = msg.SerializeToString() if i % 2 else cs_json(msg)      # JSON and protobuf marshaling
                messages.append((cs_topic(eui), body))
                expected.add((eui.hex(), seq))
            topic, body = tts_uplink(TTS_EUI, frame(report(n), TTS_EUI), n + 1, device_id="node-00a1")
            messages.append((topic, body))
            expected.add((TTS_EUI.hex(), n))
        # a few broker-level redeliveries of the same event
        messages += messages[10:20]
        infos = []
        killed = False
        for k, (topic, body) in enumerate(messages):
            infos.append(pub.publish(topic, body, qos=1))
            if k % 50 == 49:
                time.sleep(0.02)
            if not killed and k > len(messages) // 3:
                wait_for(lambda: count(db_path) > 40, 30, "first reports stored")
                os.kill(gw.pid, signal.SIGKILL)          # mid-stream, mid-delivery
                gw.wait()
                killed = True
                hook.down()                               # and the webhook goes away for a while
        for info in infos:
            info.wait_for_publish(10)
        assert all(info.is_published() for info in infos)   # the broker acknowledged every uplink
        time.sleep(0.5)
        gw = subprocess.Popen(gateway_cmd(cfg), stdout=log, stderr=subprocess.STDOUT)
        time.sleep(1.5)
        hook.up()

        wait_for(lambda: count(db_path) == len(expected), 60, "all reports stored")
        stored = set()
        db = sqlite3.connect(str(db_path))
        for eui, seq in db.execute("SELECT dev_eui, seq FROM reports"):
            stored.add((eui, seq))
        assert stored == expected
        assert db.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
        db.close()

        n = len(expected)
        wait_for(lambda: len(hook.store) == n, 60, "webhook deliveries")
        # NGSI-LD: one entity per zone and per line, its history an instance per interval (observedAt;
        # here the intervals were all sent within seconds, so their times coincide: count instances)
        instances = lambda: sum(len(v) for (_, attr), v in ngsi.history.items() if attr == "peopleCount")
        wait_for(lambda: instances() >= n * 2, 60, "NGSI-LD history")
        assert len(ngsi.entities) == len(EUIS) * 2 + 2
        # SensorThings: server-assigned ids, no duplicate after kill -9 and timeouts
        wait_for(lambda: len(things.observations()) >= n * 6, 90, "SensorThings observations")
        ids = [o["parameters"]["vistelse_id"] for o in things.observations()]
        assert len(ids) == len(set(ids)) == n * 6
        assert len(things.db["Sensors"]) == 1 and len(things.db["ObservedProperties"]) == 6
        wait_for(lambda: len(republished) == n, 60, "MQTT republish")
        assert set(hook.store) == {"vistelse:%s:%d" % k for k in expected}
        # every outbox is empty and nothing was refused
        status, text = get(web_port, "/metrics")
        samples = {(s.name, s.labels.get("sink")): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples}
        for sink in ("ngsi-ld", "sensorthings", "webhook", "mqtt"):
            assert samples[("vistelse_gateway_outbox_depth", sink)] == 0
            assert samples[("vistelse_gateway_outbox_dead", sink)] == 0
        assert 'vistelse_gateway_uplinks_total{outcome="accepted"}' in text
        # a redelivered report overwrote the same entity: received >= stored, stored exact
        assert ngsi.received >= len(ngsi.entities) and hook.received >= len(hook.store)
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(20) == 0                     # graceful shutdown
    finally:
        if gw.poll() is None:
            gw.kill()
        pub.loop_stop()
        sub.loop_stop()
        for s in (ngsi, things):
            s.down()
        try:
            hook.down()
        except Exception:
            pass


def _up(port):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
