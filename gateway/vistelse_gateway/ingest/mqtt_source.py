"""MQTT source: a persistent QoS 1 session on the network server's broker.

Messages are acknowledged (PUBACK) only after the pipeline has committed
them (paho's manual_ack), so the broker keeps and redelivers everything the
gateway has not stored - across reconnects, restarts and kill -9. paho
reconnects by itself with exponential backoff (reconnect_min_s..max_s).

Several instances share the stream through an MQTT v5 shared subscription
(`shared_group`: $share/<group>/<topic>), each with its own persistent
session (client id). mosquitto hands each message to the group's members in
turn, offline members with a session included (src/subs.c,
subs__shared_process: plain round robin over the subscribed sessions), and
keeps what it handed to a member in that member's session. So:

* an instance that dies (kill -9) finds its share waiting when it reconnects,
  as a single instance does; started elsewhere under the same instance name,
  it takes the session over;
* an instance stopped gracefully while other instances run (the store knows:
  `others_running`) leaves the group first: it unsubscribes (no new messages
  are routed to it), keeps taking what the broker had already queued for it
  until the session is empty and everything is committed and acknowledged,
  and only then disconnects. A stopped member strands nothing;
* the last instance to stop keeps its subscription: with no member left
  subscribed the broker would drop what is published meanwhile, so it
  queues in the last one's session until that instance comes back.
"""
import logging
import threading
import time

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
        self.shared = bool(group)
        self.topics = [("$share/%s/%s" % (group, t) if group else t) for t in topics]
        self.drain_s = float(cfg.get("drain_s", 20))
        self._unacked = 0
        self._last_message = 0.0
        self._count_lock = threading.Lock()
        self.unsubscribed = threading.Event()
        self.others_running = lambda: False     # set by the gateway from its store
        cfg = dict(cfg)
        cfg.setdefault("client_id", "vistelse-gateway-" + name)
        self.proto = protocol(cfg)
        self.client = make_client(cfg, clean=False, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = lambda *a, **k: self.unsubscribed.set()
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
        if self.shared and self.connected.is_set():
            try:
                others = self.others_running()
            except Exception as exc:    # store unreachable: keep the session, lose nothing
                log.warning("source %s: cannot tell whether other instances run (%s); keeping the "
                            "subscription", self.name, exc)
                others = False
            if others:
                self.leave_group()
            else:
                log.info("source %s: last instance of the group: keeping the subscription, the broker "
                         "queues for this session until it returns", self.name)
        self.client.disconnect()
        self.client.loop_stop()

    def leave_group(self):
        """Unsubscribe, then take and acknowledge what the broker still holds for this
        session (the pipeline keeps running meanwhile) -> True when drained."""
        self.unsubscribed.clear()
        self.client.unsubscribe(self.topics)
        if not self.unsubscribed.wait(5):
            log.warning("source %s: no UNSUBACK; stopping anyway (the session keeps its messages)", self.name)
            return False
        deadline = time.monotonic() + self.drain_s
        while time.monotonic() < deadline:
            with self._count_lock:
                idle = self._unacked == 0 and time.monotonic() - self._last_message > 0.5
            if idle or not self.connected.is_set():
                break
            time.sleep(0.05)
        with self._count_lock:
            left = self._unacked
        if left:
            log.warning("source %s: %d messages not yet committed at stop; the broker keeps them for this "
                        "session", self.name, left)
        else:
            log.info("source %s: left shared group, nothing pending", self.name)
        return left == 0

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
        with self._count_lock:
            self._unacked += 1
            self._last_message = time.monotonic()

        def ack(result, mid=mid, qos=qos):
            if qos:
                client.ack(mid, qos)
            with self._count_lock:
                self._unacked -= 1
        self.pipeline.submit(self.kind, msg.topic, msg.payload, ack=ack)
