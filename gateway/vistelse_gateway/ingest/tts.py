"""The Things Stack v3: MQTT (v3/{app}@{tenant}/devices/{device_id}/{event}) and webhooks.

Messages are snake_case JSON (ApplicationUp); empty fields are omitted, so
`f_cnt` may be absent (0). Topics carry the device id, not the DevEUI.
"""
import base64
import binascii
import json

from ..timeutil import parse_rfc3339
from ..uplink import Ignored, NetworkEvent, Rejected, Uplink, eui_from_hex

MAX_BODY = 64 * 1024
KEEP = ("up", "join")
IGNORED = ("down/queued", "down/sent", "down/ack", "down/nack", "down/failed",
           "service/data", "location/solved", "down/push", "down/replace")


def split_topic(topic):
    """-> (application as 'app@tenant' or 'app', device_id, event)."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != "v3" or parts[2] != "devices" or not parts[1] or not parts[3]:
        raise Rejected("bad_topic", "not v3/{app}@{tenant}/devices/{id}/{event}: %r" % topic[:200])
    return parts[1], parts[3], "/".join(parts[4:])


def _int(value, name, lo=0, hi=0xFFFFFFFF):
    if value is None:
        return 0
    if type(value) is bool or not isinstance(value, (int, str)):
        raise Rejected("malformed", "%s must be an integer" % name)
    try:
        value = int(value)
    except ValueError:
        raise Rejected("malformed", "%s must be an integer" % name) from None
    if not lo <= value <= hi:
        raise Rejected("malformed", "%s out of range" % name)
    return value


def _ids(doc):
    ids = doc.get("end_device_ids")
    if not isinstance(ids, dict):
        raise Rejected("malformed", "end_device_ids is missing")
    device_id = ids.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        raise Rejected("malformed", "end_device_ids.device_id is missing")
    app_ids = ids.get("application_ids")
    app = app_ids.get("application_id") if isinstance(app_ids, dict) else None
    if not isinstance(app, str) or not app:
        raise Rejected("malformed", "end_device_ids.application_ids.application_id is missing")
    dev_eui = ids.get("dev_eui")
    return app, device_id, (eui_from_hex(dev_eui, "end_device_ids.dev_eui") if dev_eui is not None else None)


def _time(value):
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except (ValueError, TypeError, OverflowError):
        raise Rejected("malformed", "received_at is not an RFC 3339 time") from None


def parse_document(body, source, topic=""):
    if len(body) > MAX_BODY:
        raise Rejected("malformed", "body of %d bytes" % len(body))
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Rejected("malformed", "The Things Stack JSON: %s" % str(exc)[:200]) from None
    if not isinstance(doc, dict):
        raise Rejected("malformed", "The Things Stack message is not an object")
    app, device_id, dev_eui = _ids(doc)
    if "uplink_message" in doc:
        up = doc["uplink_message"]
        if not isinstance(up, dict):
            raise Rejected("malformed", "uplink_message is not an object")
        payload = up.get("frm_payload", "")
        if not isinstance(payload, str):
            raise Rejected("malformed", "frm_payload must be base64 text")
        try:
            payload = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected("malformed", "frm_payload is not base64") from None
        rssi = snr = None
        meta = up.get("rx_metadata") or []
        if not isinstance(meta, list):
            raise Rejected("malformed", "rx_metadata must be a list")
        for rx in meta:
            if isinstance(rx, dict):
                r = rx.get("rssi", rx.get("channel_rssi"))
                if isinstance(r, (int, float)) and not isinstance(r, bool) and (rssi is None or r > rssi):
                    rssi = float(r)
                    s = rx.get("snr")
                    snr = float(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else None
        corr = doc.get("correlation_ids") or []
        dedup = next((c for c in corr if isinstance(c, str) and c.startswith("as:up:")), "") if isinstance(corr, list) else ""
        return Uplink(
            source=source, network="tts", application=app, dev_eui=dev_eui, device_id=device_id,
            f_port=_int(up.get("f_port"), "f_port", 0, 255), f_cnt=_int(up.get("f_cnt"), "f_cnt"),
            payload=payload, time=_time(up.get("received_at", doc.get("received_at"))), dedup_id=dedup,
            rssi=rssi, snr=snr, gateways=len(meta), topic=topic, raw=body)
    if "join_accept" in doc:
        ja = doc["join_accept"] if isinstance(doc["join_accept"], dict) else {}
        return NetworkEvent(source=source, network="tts", kind="join", application=app, dev_eui=dev_eui,
                            device_id=device_id, time=_time(ja.get("received_at", doc.get("received_at"))),
                            body={"session_key_id": str(ja.get("session_key_id", ""))[:100]}, topic=topic, raw=body)
    raise Ignored("no uplink_message or join_accept")


def parse_mqtt(topic, body):
    app, device_id, event = split_topic(topic)
    if event not in KEEP:
        if event in IGNORED:
            raise Ignored(event)
        raise Rejected("unknown_event", "event %r" % event[:40])
    out = parse_document(body, "tts-mqtt", topic)
    out.topic_application = app
    out.topic_device = device_id
    if event == "up" and not isinstance(out, Uplink) or event == "join" and not isinstance(out, NetworkEvent):
        raise Rejected("topic_mismatch", "topic says %s, body is something else" % event)
    return out


def parse_webhook(path_event, body):
    return parse_document(body, "tts-webhook")


def application_key(app, tenant=None):
    """How the registry writes a TTS application: 'app@tenant' or 'app'."""
    return "%s@%s" % (app, tenant) if tenant else app


__all__ = ["parse_mqtt", "parse_webhook", "split_topic", "eui_from_hex", "Ignored"]
