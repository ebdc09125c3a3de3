"""Republish each report as JSON on an MQTT broker (QoS 1, waits for PUBACK)."""
import json
import threading

import paho.mqtt.client as mqtt

from .base import Sink, TransientError, report_json
from ..mqttutil import make_client


class MqttSink(Sink):
    max_batch = 200

    def __init__(self, name, cfg, store):
        Sink.__init__(self, name, cfg, store)
        self.topic = cfg.get("topic", "vistelse/{site}/{dev_eui}/report")
        self.qos = int(cfg.get("qos", 1))
        self.retain = bool(cfg.get("retain", False))
        cfg = dict(cfg)
        cfg.setdefault("client_id", "vistelse-gateway-sink-" + name)
        self.client = make_client(cfg, clean=True)
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p=None: self.connected.set() if not rc.is_failure else None
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.connect_async(cfg.get("host", "127.0.0.1"), int(cfg.get("port", 1883)),
                                  keepalive=int(cfg.get("keepalive", 30)))
        self.client.loop_start()

    def deliver(self, items):
        if not self.connected.wait(self.timeout):
            raise TransientError("not connected to the MQTT broker")
        infos = []
        for item in items:
            doc = report_json(item)
            topic = self.topic.format(site=_topic_part(doc["site"] or "site"), dev_eui=doc["dev_eui"])
            infos.append(self.client.publish(topic, json.dumps(doc, separators=(",", ":")), qos=self.qos,
                                             retain=self.retain))
        for info in infos:
            if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
                raise TransientError("publish failed: %s" % mqtt.error_string(info.rc))
            try:
                info.wait_for_publish(self.timeout)
            except (RuntimeError, ValueError) as exc:
                raise TransientError("publish failed: %s" % exc) from None
            if not info.is_published():
                raise TransientError("no PUBACK within %.0f s" % self.timeout)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def _topic_part(text):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
