"""ChirpStack v4 integration events: MQTT (JSON or protobuf marshaling) and HTTP.

MQTT topic: application/{application_id}/device/{dev_eui}/event/{event}.
JSON follows protobuf's JSON mapping (camelCase, zero and false fields
omitted: `fCnt: 0` is absent), so it is parsed with json_format into the
same `chirpstack_api.integration` classes as the protobuf form.
"""
import base64
import binascii
import json
import re

from chirpstack_api import integration
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor as FD
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


# -- the common shapes of the JSON mapping, without json_format's generic walk --------
# json_format converts field by field through Python-level descriptor lookups (~8 µs a
# field, most of the parsing cost). `fill_plain` sets the same fields directly for the
# plain shapes ChirpStack writes (numbers as numbers, standard base64, enum names,
# RFC 3339 timestamps, string maps) and gives up (-> None) on anything else, which then
# goes through json_format as before: it accepts a subset of what json_format accepts,
# producing the same message (tests/test_gateway_fuzz.py checks this differentially).
_INT_RANGES = {FD.CPPTYPE_INT32: (-2 ** 31, 2 ** 31 - 1), FD.CPPTYPE_UINT32: (0, 2 ** 32 - 1),
               FD.CPPTYPE_INT64: (-2 ** 63, 2 ** 63 - 1), FD.CPPTYPE_UINT64: (0, 2 ** 64 - 1)}
_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
FLOAT_MAX = 3.4028234663852886e38


class _NotPlain(Exception):
    pass


def _scalar_check(field):
    """-> function(JSON value) -> the field's value, raising _NotPlain for anything but the
    plain shape of this field's type (decided once per field, not once per value)."""
    cpp = field.cpp_type
    if cpp in _INT_RANGES:
        lo, hi = _INT_RANGES[cpp]

        def check(value):
            if type(value) is int and lo <= value <= hi:
                return value
            raise _NotPlain()
    elif cpp in (FD.CPPTYPE_FLOAT, FD.CPPTYPE_DOUBLE):
        limit = FLOAT_MAX if cpp == FD.CPPTYPE_FLOAT else float("inf")

        def check(value):
            if type(value) in (int, float) and value == value and abs(value) < limit:
                return float(value)
            raise _NotPlain()
    elif cpp == FD.CPPTYPE_STRING and field.type == FD.TYPE_BYTES:
        def check(value):
            if type(value) is str and _B64.match(value):
                try:
                    return base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    pass
            raise _NotPlain()
    elif cpp in (FD.CPPTYPE_BOOL, FD.CPPTYPE_STRING):
        plain = bool if cpp == FD.CPPTYPE_BOOL else str

        def check(value):
            if type(value) is plain:
                return value
            raise _NotPlain()
    elif cpp == FD.CPPTYPE_ENUM:
        numbers = {name: ev.number for name, ev in field.enum_type.values_by_name.items()}

        def check(value):
            if type(value) is str and value in numbers:
                return numbers[value]
            raise _NotPlain()
    else:
        def check(value):
            raise _NotPlain()
    return check


# how each field of a message type is filled: by JSON name -> (name, how, oneof, check);
# how: "scalar", "message", "repeated" (of messages), "map" (string keys, scalar values),
# "timestamp", or "no" (a shape left to json_format)
_PLANS = {}


def _plan(desc):
    plan = _PLANS.get(desc.full_name)
    if plan is not None:
        return plan
    by_json = {}
    for field in desc.fields:
        check = None
        mt = field.message_type
        if mt is not None:
            if mt.GetOptions().map_entry:
                kf, vf = mt.fields_by_name["key"], mt.fields_by_name["value"]
                how = "map" if kf.cpp_type == FD.CPPTYPE_STRING and vf.message_type is None else "no"
                check = _scalar_check(vf) if how == "map" else None
            elif field.is_repeated:
                how = "repeated"
            elif mt.full_name == "google.protobuf.Timestamp":
                how = "timestamp"
            elif mt.full_name.startswith("google.protobuf."):
                how = "no"
            else:
                how = "message"
        elif field.is_repeated:
            how = "no"
        else:
            how, check = "scalar", _scalar_check(field)
        oneof = field.containing_oneof.name if field.containing_oneof is not None else None
        by_json[field.json_name] = (field.name, how, oneof, check)
    plan = _PLANS[desc.full_name] = (by_json, frozenset(desc.fields_by_name))
    return plan


def _fill(msg, doc):
    if type(doc) is not dict:
        raise _NotPlain()
    by_json, proto_names = _plan(msg.DESCRIPTOR)
    oneofs = set()
    for key, value in doc.items():
        entry = by_json.get(key)
        if entry is None:
            if key in proto_names:
                raise _NotPlain()           # a proto name: json_format's rules for mixed names apply
            continue                        # unknown: ignored, as with ignore_unknown_fields=True
        if value is None:
            raise _NotPlain()
        name, how, oneof, check = entry
        if oneof is not None:
            if oneof in oneofs:
                raise _NotPlain()
            oneofs.add(oneof)
        if how == "scalar":
            setattr(msg, name, check(value))
        elif how == "message":
            _fill(getattr(msg, name), value)
        elif how == "repeated":
            if type(value) is not list:
                raise _NotPlain()
            target = getattr(msg, name)
            for item in value:
                _fill(target.add(), item)
        elif how == "map":
            if type(value) is not dict:
                raise _NotPlain()
            target = getattr(msg, name)
            for k, v in value.items():
                target[k] = check(v)
        elif how == "timestamp":
            if type(value) is not str:
                raise _NotPlain()
            try:
                getattr(msg, name).FromJsonString(value)
            except ValueError:
                raise _NotPlain() from None
        else:
            raise _NotPlain()


def fill_plain(cls, doc):
    """-> cls message from a JSON-mapping dict of plain shape, or None (use json_format)."""
    msg = cls()
    try:
        _fill(msg, doc)
    except (_NotPlain, TypeError, ValueError):
        return None
    return msg


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
            fields = {k: doc[k] for k in UP_FIELDS if k in doc}
            msg = fill_plain(cls, fields) or json_format.ParseDict(fields, cls(), ignore_unknown_fields=True)
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
