"""Ingest: every network-server message becomes an `Uplink` or a `NetworkEvent`.

`parse(source, topic_or_event, body)` dispatches to the right parser; every
failure raises `Rejected` with a reason, so the pipeline can quarantine it.
"""
from ..uplink import Ignored, Rejected
from . import chirpstack, tts


def parse(kind, where, body, content_type=""):
    """kind: 'chirpstack-mqtt' (where=topic), 'chirpstack-http' (where=event name),
    'tts-mqtt' (where=topic), 'tts-webhook' (where=path suffix or '')."""
    if kind == "chirpstack-mqtt":
        return chirpstack.parse_mqtt(where, body)
    if kind == "chirpstack-http":
        return chirpstack.parse_http(where, body, content_type)
    if kind == "tts-mqtt":
        return tts.parse_mqtt(where, body)
    if kind == "tts-webhook":
        return tts.parse_webhook(where, body)
    raise Rejected("unknown_source", kind)


__all__ = ["parse", "Ignored", "Rejected"]
