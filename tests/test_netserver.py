"""The ChirpStack v4 stand-in publishes real-schema events over a real broker."""
import json
import queue

import paho.mqtt.client as mqtt
import pytest
from chirpstack_api import integration
from google.protobuf import json_format

from vistelse_gateway.testing import Mosquitto
from vistelse_tools.netserver import NetworkServer, downlink_command

APP = "5b3c1a8e-6d3f-4f7e-9a35-2d9f1c0e7b11"
TENANT = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
EUI = "70b3d57ed0000001"


@pytest.fixture(scope="module")
def broker():
    with Mosquitto() as b:
        yield b


def subscriber(broker, topic):
    got = queue.Queue()
    ready = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: (c.subscribe(topic, qos=1), ready.put(1))
    client.on_subscribe = lambda *a: ready.put(2)
    client.on_message = lambda c, u, m: got.put((m.topic, m.payload))
    client.connect(broker.host, broker.port)
    client.loop_start()
    ready.get(timeout=5)
    ready.get(timeout=5)
    return client, got


@pytest.mark.parametrize("marshaling", ["json", "protobuf"])
def test_uplink_is_a_chirpstack_uplink_event(broker, marshaling):
    ns = NetworkServer(broker.host, broker.port, APP, TENANT, marshaling=marshaling)
    client, got = subscriber(broker, "application/+/device/+/event/up")
    try:
        ns.add_device(EUI, "square-north", tags={"site": "demo"})
        ns.publish_uplink(EUI, 1, b"\x01\x02\x03", fcnt=0, dr=3)
        topic, payload = got.get(timeout=5)
        assert topic == "application/%s/device/%s/event/up" % (APP, EUI)
        event = integration.UplinkEvent()
        if marshaling == "json":
            body = json.loads(payload)
            assert "fCnt" not in body          # ChirpStack's JSON omits zero fields
            assert body["fPort"] == 1 and body["dr"] == 3
            assert body["deviceInfo"]["devEui"] == EUI
            json_format.Parse(payload, event, ignore_unknown_fields=True)
        else:
            event.ParseFromString(payload)
        assert event.data == b"\x01\x02\x03" and event.f_cnt == 0
        assert event.device_info.application_id == APP and event.device_info.tags["site"] == "demo"
        assert event.tx_info.modulation.lora.spreading_factor == 9
        assert event.rx_info[0].gateway_id
    finally:
        client.loop_stop()
        ns.close()


def test_downlink_command_is_queued_for_the_device(broker):
    ns = NetworkServer(broker.host, broker.port, APP, TENANT)
    try:
        ns.add_device(EUI, "square-north")
        app = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        app.connect(broker.host, broker.port)
        app.loop_start()
        topic = "application/%s/device/%s/command/down" % (APP, EUI)
        app.publish(topic, downlink_command(EUI, 2, b"\xaa\xbb"), qos=1).wait_for_publish(5)
        # A command whose body names another device is not queued.
        app.publish(topic, downlink_command("0000000000000009", 2, b"\xcc"), qos=1).wait_for_publish(5)
        app.loop_stop()
        import time
        deadline = time.time() + 5
        item = None
        while item is None and time.time() < deadline:
            item = ns.next_downlink(EUI)
            time.sleep(0.02)
        assert item == (2, b"\xaa\xbb", False)
        time.sleep(0.2)
        assert ns.next_downlink(EUI) is None
    finally:
        ns.close()
