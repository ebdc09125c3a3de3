"""`vistelse downlink`: encode with the contract, enqueue via ChirpStack gRPC (a real
grpc server implementing DeviceService), ChirpStack MQTT (real mosquitto) or The
Things Stack push (real HTTP server); applied when an uplink reports the version."""
import base64
import json
import os
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import paho.mqtt.client as mqtt
import pytest
import vistelse_codec
from chirpstack_api import api
from paho.mqtt.enums import CallbackAPIVersion

from vistelse_gateway import downlink_cli
from vistelse_gateway.metrics import Metrics
from vistelse_gateway.pipeline import Item, Pipeline
from vistelse_gateway.testing import (APP_ID, KEY, Mosquitto, chirpstack_uplink, cs_json, cs_topic,
                                      frame, mosquitto_path, report)

EUI = bytes.fromhex("70b3d57ed0000021")
TTS_EUI = bytes.fromhex("70b3d57ed0000022")
CS_TOKEN = "chirpstack-api-token"


class FakeDeviceService(api.DeviceServiceServicer):
    """A real gRPC server speaking ChirpStack's DeviceService (Enqueue only)."""

    def __init__(self):
        self.items = []

    def Enqueue(self, request, context):
        meta = dict(context.invocation_metadata())
        if meta.get("authorization") != "Bearer " + CS_TOKEN:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        self.items.append(request.queue_item)
        return api.EnqueueDeviceQueueItemResponse(id="2a8f3c4e-0000-4000-8000-%012d" % len(self.items))


@pytest.fixture
def setup(tmp_path, stores):
    service = FakeDeviceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api.add_DeviceServiceServicer_to_server(service, server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    pushes = []

    class TTS(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            pushes.append((self.path, self.headers["Authorization"], json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
    tts = ThreadingHTTPServer(("127.0.0.1", 0), TTS)
    threading.Thread(target=tts.serve_forever, daemon=True).start()

    broker = None
    if mosquitto_path() is not None:
        broker = Mosquitto().start()
    elif os.geteuid() == 0:
        pytest.fail("mosquitto is not installed: run tools/setup.sh")

    (tmp_path / "token").write_text(CS_TOKEN + "\n")
    cfg = tmp_path / "gateway.toml"
    store_toml = ('[store]\nurl = "%s"\n' % stores.config["url"] if stores.backend == "postgres"
                  else '[store]\npath = "%s"\n' % os.path.basename(stores.config["path"]))
    cfg.write_text(store_toml + """
[gateway]
state_dir = "."
[http]
enabled = false
[[source]]
type = "chirpstack-mqtt"
host = "127.0.0.1"
port = %d
[downlink]
chirpstack_grpc = "127.0.0.1:%d"
chirpstack_token_file = "token"
tts_url = "http://127.0.0.1:%d"
tts_webhook_id = "vistelse"
tts_api_key = "NNSXS.TESTKEY"
""" % (broker.port if broker else 1, grpc_port, tts.server_address[1]))
    store = stores.open()
    store.put_device({"dev_eui": EUI.hex(), "network": "chirpstack", "application": APP_ID}, KEY)
    store.put_device({"dev_eui": TTS_EUI.hex(), "network": "tts", "application": "vistelse@city",
                      "tts_device_id": "node-0022"}, KEY)
    yield {"cfg": str(cfg), "store": store, "grpc": service, "pushes": pushes, "broker": broker}
    server.stop(0)
    tts.shutdown()
    if broker:
        broker.stop()


def test_grpc_enqueue_then_applied_by_the_next_uplink(setup, capsys):
    rc = downlink_cli.main([EUI.hex(), "--config", setup["cfg"], "--interval", "600", "--min-count", "3",
                            "--zone", "0:-2000,500 2000,500 2000,5000", "--delete-line", "1"])
    assert rc == 0, capsys.readouterr().err
    item = setup["grpc"].items[0]
    assert item.dev_eui == EUI.hex() and item.f_port == vistelse_codec.FPORT_CONFIG
    conf = vistelse_codec.decode_downlink(item.data, item.f_port, dev_eui=EUI, key=KEY)
    assert conf["config_version"] == 1 and conf["interval_s"] == 600 and conf["min_count"] == 3
    assert conf["zones"][0]["polygon_mm"][2] == [2000, 5000] and conf["lines"] == [{"index": 1, "delete": True}]
    store = setup["store"]
    assert store.downlinks(EUI.hex())[0]["status"] == "pending"
    # the node reports the new version: applied
    pipe = Pipeline(store, Metrics())
    msg = cs_json(chirpstack_uplink(EUI, frame(report(1, config_version=1), EUI), 1))
    pipe.process([Item("chirpstack-mqtt", cs_topic(EUI), msg, "", None, time.time())])
    assert store.downlinks(EUI.hex())[0]["status"] == "applied"
    # the next version gets the next number; the node rejects it
    assert downlink_cli.main([EUI.hex(), "--config", setup["cfg"], "--still-hold", "90"]) == 0
    assert store.downlinks(EUI.hex())[1]["config_version"] == 2
    msg = cs_json(chirpstack_uplink(EUI, frame(report(2, config_version=1, health=["config_rejected"]), EUI), 2))
    pipe.process([Item("chirpstack-mqtt", cs_topic(EUI), msg, "", None, time.time())])
    assert store.downlinks(EUI.hex())[1]["status"] == "rejected"
    actions = [e["action"] for e in store.access_log()]
    assert actions.count("downlink.enqueue") == 2 and store.verify_access_log()["ok"]


def test_grpc_failure_is_reported_and_recorded(setup, tmp_path, capsys):
    (tmp_path / "token").write_text("wrong")
    assert downlink_cli.main([EUI.hex(), "--config", setup["cfg"], "--interval", "300"]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    assert setup["store"].downlinks()[0]["status"] == "failed"


def test_chirpstack_mqtt_command_topic(setup):
    broker = setup["broker"]
    got = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dl-sub")
    sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("application/+/device/+/command/down", qos=1)
    sub.loop_start()
    time.sleep(0.3)
    try:
        assert downlink_cli.main([EUI.hex(), "--config", setup["cfg"], "--interval", "900",
                                  "--via", "chirpstack-mqtt"]) == 0
        deadline = time.time() + 5
        while not got and time.time() < deadline:
            time.sleep(0.05)
    finally:
        sub.loop_stop()
    topic, body = got[0]
    assert topic == "application/%s/device/%s/command/down" % (APP_ID, EUI.hex())
    assert body["fPort"] == 2 and body["devEui"] == EUI.hex()
    conf = vistelse_codec.decode_downlink(base64.b64decode(body["data"]), 2, dev_eui=EUI, key=KEY)
    assert conf["interval_s"] == 900


def test_the_things_stack_push(setup):
    assert downlink_cli.main([TTS_EUI.hex(), "--config", setup["cfg"], "--mode", "tof_8x8"]) == 0
    path, auth, body = setup["pushes"][0]
    assert path == "/api/v3/as/applications/vistelse/webhooks/vistelse/devices/node-0022/down/push"
    assert auth == "Bearer NNSXS.TESTKEY"
    dl = body["downlinks"][0]
    conf = vistelse_codec.decode_downlink(base64.b64decode(dl["frm_payload"]), dl["f_port"], dev_eui=TTS_EUI, key=KEY)
    assert conf["sensor_mode"] == "tof_8x8"
    # the orientation a walk test found (docs/evaluation.md), as provision writes it
    assert downlink_cli.main([TTS_EUI.hex(), "--config", setup["cfg"], "--rotate", "3", "--mirror"]) == 0
    dl = setup["pushes"][1][2]["downlinks"][0]
    conf = vistelse_codec.decode_downlink(base64.b64decode(dl["frm_payload"]), dl["f_port"], dev_eui=TTS_EUI, key=KEY)
    assert conf["orientation"] == {"rotate": 3, "mirror": True}


def test_bad_configuration_is_refused_before_sending(setup, capsys):
    assert downlink_cli.main([EUI.hex(), "--config", setup["cfg"], "--interval", "5"]) == 2
    assert "interval_s" in capsys.readouterr().err
    assert not setup["grpc"].items


def test_receipts_go_the_configurations_way_on_their_own_port(setup):
    """The gateway's receipts (fPort 3) through ChirpStack gRPC and The Things Stack."""
    from vistelse_gateway import config as config_mod
    from vistelse_gateway.downlink import ReceiptSender
    cfg = config_mod.load(setup["cfg"])
    frame = vistelse_codec.encode_downlink({"receipt": 1, "next_seq": 10, "stored_seq": [12]}, dev_eui=EUI, key=KEY)
    sender = ReceiptSender(cfg)
    sender(EUI.hex(), setup["store"].get_device(EUI.hex()), frame)              # default via: chirpstack-grpc
    sender(TTS_EUI.hex(), setup["store"].get_device(TTS_EUI.hex()), frame)      # a TTS device: tts
    sender.queue.join()
    sender.stop()
    assert sender.sent == 2 and sender.failed == 0
    item = setup["grpc"].items[-1]
    assert item.f_port == vistelse_codec.FPORT_RECEIPT and bytes(item.data) == frame
    push = setup["pushes"][-1][2]["downlinks"][0]
    assert push["f_port"] == 3 and base64.b64decode(push["frm_payload"]) == frame
