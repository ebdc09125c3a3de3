"""MQTT source: a persistent QoS 1 session on the network server's broker.

Messages are acknowledged (PUBACK) only after the pipeline has committed
them (paho's manual_ack), so the broker keeps and redelivers everything the
gateway has not stored - across reconnects, restarts and kill -9. paho
reconnects by itself with exponential backoff (reconnect_min_s..max_s).
"""
import logging
import threading

import paho.mqtt.client as mqtt

from ..mqttutil import connect_properties, make_client, protocol

log = logging.getLogger("vistelse.mqtt")

DEFAULT_TOPICS = {
    "chirpstack": ["application/+/device/+/event/up", "application/+/device/+/event/join",
                   "application/+/device/+/event/status", "application/+/device/+/event/log"],
    "tts": ["v3/+/devices/+/up", "v3/+/devices/+/join"],
}


class MqttSource:
    def __init__(self, name, cfg, pipeline, metrics):
        self.name = name
        self.cfg = cfg
        self.network = cfg["network"]
        if self.network not in DEFAULT_TOPICS:
            raise ValueError("source %r: network must be chirpstack or tts" % name)
        self.kind = self.network + "-mqtt"
        self.pipeline = pipeline
        self.metrics = metrics
        self.qos = int(cfg.get("qos", 1))
        topics = cfg.get("topics") or DEFAULT_TOPICS[self.network]
        group = cfg.get("shared_group")
        self.topics = [("$share/%s/%s" % (group, t) if group else t) for t in topics]
        cfg = dict(cfg)
        cfg.setdefault("client_id", "vistelse-gateway-" + name)
        self.proto = protocol(cfg)
        self.client = make_client(cfg, clean=False, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.host, self.port = cfg.get("host", "127.0.0.1"), int(cfg.get("port", 1883))
        self.keepalive = int(cfg.get("keepalive", 30))
        self.cfg_full = cfg

    def start(self):
        kwargs = {}
        if self.proto == mqtt.MQTTv5:
            kwargs = {"clean_start": False, "properties": connect_properties(self.cfg_full)}
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive, **kwargs)
        self.client.loop_start()

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason, properties=None):
        if reason.is_failure:
            log.error("source %s: broker refused the connection: %s", self.name, reason)
            return
        self.metrics.inc("vistelse_gateway_mqtt_connections_total", source=self.name)
        log.info("source %s: connected to %s:%d (session present: %s)", self.name, self.host, self.port,
                 flags.session_present)
        client.subscribe([(t, self.qos) for t in self.topics])
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reasons, properties=None):
        bad = [r for r in reasons if r.is_failure]
        if bad:
            log.error("source %s: the broker refused subscriptions: %s", self.name, bad)
        else:
            self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason, properties=None):
        self.connected.clear()
        self.subscribed.clear()
        if reason.is_failure if hasattr(reason, "is_failure") else reason:
            log.warning("source %s: disconnected (%s); paho reconnects with backoff", self.name, reason)

    def _on_message(self, client, userdata, msg):
        mid, qos = msg.mid, msg.qos

        def ack(result, mid=mid, qos=qos):
            if qos:
                client.ack(mid, qos)
        self.pipeline.submit(self.kind, msg.topic, msg.payload, ack=ack)
