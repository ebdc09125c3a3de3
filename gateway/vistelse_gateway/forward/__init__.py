"""Forwarding: sinks behind one interface, each fed by a durable outbox."""
from .base import PermanentError, Sink, TransientError
from .outbox import OutboxWorker


def build_sinks(configs, store):
    """[sink config dicts] -> [Sink]; raises ValueError with a clear message."""
    sinks = []
    names = set()
    for cfg in configs:
        kind = cfg.get("type")
        name = cfg.get("name") or kind
        if name in names:
            raise ValueError("two sinks are called %r; give each a distinct name" % name)
        names.add(name)
        if kind == "ngsi-ld":
            from .ngsild import NgsiLdSink as cls
        elif kind == "sensorthings":
            from .sensorthings import SensorThingsSink as cls
        elif kind == "mqtt":
            from .mqtt_sink import MqttSink as cls
        elif kind == "webhook":
            from .webhook import WebhookSink as cls
        else:
            raise ValueError("sink %r: unknown type %r (ngsi-ld, sensorthings, mqtt, webhook)" % (name, kind))
        sinks.append(cls(name, cfg, store))
    return sinks


__all__ = ["Sink", "TransientError", "PermanentError", "OutboxWorker", "build_sinks"]
