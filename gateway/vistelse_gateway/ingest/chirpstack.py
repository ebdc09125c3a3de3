"""ChirpStack v4 integration events: MQTT (JSON or protobuf marshaling) and HTTP.

MQTT topic: application/{application_id}/device/{dev_eui}/event/{event}.
JSON follows protobuf's JSON mapping (camelCase, zero and false fields
omitted: `fCnt: 0` is absent), so it is parsed with json_format into the
same `chirpstack_api.integration` classes as the protobuf form.
"""
import json

from chirpstack_api import integration
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from ..timeutil import parse_rfc3339
from ..uplink import Ignored, NetworkEvent, Rejected, Uplink, eui_from_hex

# events worth keeping, and their message classes
EVENTS = {
    "up": integration.UplinkEvent,
    "join": integration.JoinEvent,
    "status": integration.StatusEvent,
    "log": integration.LogEvent,
}
# acknowledged and dropped without a trace: not needed by the gateway
IGNORED_EVENTS = ("ack", "txack", "integration", "location")
MAX_BODY = 64 * 1024
# The fields of an uplink event the gateway reads. Only these go through
# json_format (same mapping, same type checks, ignore_unknown_fields=True);
# the rest of the body (txInfo, gateway locations, ...) is kept verbatim in
# the raw uplink but not converted, which halves the parsing cost.
UP_FIELDS = ("deduplicationId", "deviceInfo", "devAddr", "dr", "fCnt", "fPort", "data", "rxInfo",
             "deduplication_id", "device_info", "dev_addr", "f_cnt", "f_port", "rx_info")


def split_topic(topic):
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "application" or parts[2] != "device" or parts[4] != "event":
        raise Rejected("bad_topic", "not application/{id}/device/{dev_eui}/event/{event}: %r" % topic[:200])
    return parts[1], parts[3].lower(), parts[5]


def _is_json(body):
    for b in body[:64]:
        if b in b" \t\r\n":
            continue
        return b == 0x7B  # '{': never the first byte of a proto3 message
    return False


def decode_event(event, body, content_type=""):
    """Bytes -> protobuf message of the event's class; (message, marshaling)."""
    cls = EVENTS.get(event)
    if cls is None:
        if event in IGNORED_EVENTS:
            raise Ignored(event)
        raise Rejected("unknown_event", "event %r" % event[:40])
    if len(body) > MAX_BODY:
        raise Rejected("malformed", "body of %d bytes" % len(body))
    content_type = (content_type or "").lower()
    if "json" in content_type:
        as_json = True
    elif "protobuf" in content_type or "octet-stream" in content_type:
        as_json = False
    else:
        as_json = _is_json(body)
    if as_json:
        try:
            if event != "up":
                return json_format.Parse(body.decode("utf-8"), cls(), ignore_unknown_fields=True), "json"
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise ValueError("the event is not a JSON object")
            msg = json_format.ParseDict({k: doc[k] for k in UP_FIELDS if k in doc}, cls(),
                                        ignore_unknown_fields=True)
            when = doc.get("time")
            if when is not None:
                msg.time.FromNanoseconds(int(parse_rfc3339(when) * 1e9))
            return msg, "json"
        except (UnicodeDecodeError, json_format.ParseError, ValueError, TypeError, RecursionError,
                OverflowError) as exc:
            raise Rejected("malformed", "ChirpStack JSON %s event: %s" % (event, str(exc)[:200])) from None
    try:
        return cls.FromString(body), "pb"
    except (DecodeError, ValueError, RecursionError) as exc:
        raise Rejected("malformed", "ChirpStack protobuf %s event: %s" % (event, str(exc)[:200])) from None


def _time(msg):
    if msg.HasField("time"):
        return msg.time.seconds + msg.time.nanos / 1e9
    return None


def _common(msg):
    info = msg.device_info
    if not info.dev_eui:
        raise Rejected("malformed", "deviceInfo.devEui is missing")
    return info.application_id, eui_from_hex(info.dev_eui, "deviceInfo.devEui"), info.device_name


def to_normalised(event, msg, source, raw, topic=""):
    application, dev_eui, name = _common(msg)
    if event == "up":
        rssi = snr = None
        for rx in msg.rx_info:
            if rssi is None or rx.rssi > rssi:
                rssi, snr = rx.rssi, rx.snr
        return Uplink(
            source=source, network="chirpstack", application=application, dev_eui=dev_eui,
            device_id=name, f_port=msg.f_port, f_cnt=msg.f_cnt, payload=bytes(msg.data),
            time=_time(msg), dedup_id=msg.deduplication_id, rssi=rssi, snr=snr, dr=msg.dr,
            gateways=len(msg.rx_info), topic=topic, raw=raw)
    if event == "join":
        body = {"dev_addr": msg.dev_addr}
    elif event == "status":
        body = {"margin": msg.margin, "external_power_source": msg.external_power_source,
                "battery_level_unavailable": msg.battery_level_unavailable,
                "battery_level": round(msg.battery_level, 2)}
    else:  # log
        body = {"level": integration.LogLevel.Name(msg.level) if msg.level in integration.LogLevel.values() else str(msg.level),
                "code": integration.LogCode.Name(msg.code) if msg.code in integration.LogCode.values() else str(msg.code),
                "description": msg.description[:500], "context": dict(list(msg.context.items())[:20])}
    return NetworkEvent(source=source, network="chirpstack", kind=event, application=application,
                        dev_eui=dev_eui, device_id=name, time=_time(msg), body=body, topic=topic, raw=raw)


def parse_mqtt(topic, body):
    app, eui_hex, event = split_topic(topic)
    msg, marshaling = decode_event(event, body)
    out = to_normalised(event, msg, "chirpstack-mqtt-" + marshaling, body, topic)
    out.topic_application = app
    out.topic_device = eui_hex
    return out


def parse_http(event, body, content_type=""):
    """ChirpStack HTTP integration: POST {url}?event=up, body JSON or protobuf."""
    msg, marshaling = decode_event(event or "", body, content_type)
    return to_normalised(event, msg, "chirpstack-http", body)
