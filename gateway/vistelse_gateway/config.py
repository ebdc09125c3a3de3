"""gateway.toml: loading and checking.

Every key the gateway reads is declared once, in SCHEMA below (JSON Schema,
checked with the `jsonschema` library): its type, its allowed values and
its default. Unknown keys, wrong types and bad values stop `check` and `run`
alike with the key and the reason. To add a key: add it to its section in
SCHEMA (with "default" if it has one) and read it from the checked config;
tests/test_gateway_config.py checks that every key is covered by a test.

Rules that tie keys together (a justification for long retention, a token
for the operator surface, readable secret files) follow the schema in check().
"""
import os
import re
import socket
import sys
import tomllib

import jsonschema


class ConfigError(Exception):
    pass


EXAMPLE = "gateway/vistelse_gateway/systemd/gateway.toml.example"
SOURCE_TYPES = ("chirpstack-mqtt", "tts-mqtt")
SINK_TYPES = ("ngsi-ld", "sensorthings", "mqtt", "webhook")


# -- the schema ----------------------------------------------------------------------
def section(properties, **extra):
    """A TOML table whose keys are exactly `properties`."""
    return dict({"type": "object", "additionalProperties": False, "properties": properties}, **extra)


def string(default=None, **extra):
    return _with_default({"type": "string"}, default, extra)


def integer(lo, hi, default=None):
    return _with_default({"type": "integer", "minimum": lo, "maximum": hi}, default, {})


def number(lo, hi, default=None):
    return _with_default({"type": "number", "minimum": lo, "maximum": hi}, default, {})


def boolean(default=None):
    return _with_default({"type": "boolean"}, default, {})


def one_of(values, default=None):
    return _with_default({"enum": list(values)}, default, {})


def _with_default(schema, default, extra):
    schema = dict(schema, **extra)
    if "form" in schema:             # what the pattern means, for the error message
        schema["x-form"] = schema.pop("form")
    if default is not None:
        schema["default"] = default
    return schema


PATH = string(minLength=1)
INSTANCE_NAME = r"[A-Za-z0-9_.@-]{1,64}"
HOST_PORT = string(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^:\s\[\]]+):[0-9]{1,5}$", form="HOST:PORT, e.g. 127.0.0.1:8080")
TLS = {"oneOf": [{"type": "boolean"},
                 section({"ca_file": PATH, "cert_file": PATH, "key_file": PATH, "insecure": boolean()})]}
MQTT_CLIENT = {      # mqttutil.make_client / connect_properties
    "host": string("127.0.0.1"), "port": integer(1, 65535, 1883), "client_id": string(),
    "username": string(), "password": string(), "password_file": PATH, "tls": TLS,
    "protocol": one_of(("5", "3.1.1"), "5"), "keepalive": integer(5, 3600, 30),
    "reconnect_min_s": number(0.1, 3600, 1), "reconnect_max_s": number(0.1, 86400, 60),
    "max_inflight": integer(1, 65535, 1000), "session_expiry_s": integer(0, 2 ** 32 - 1, 7 * 24 * 3600),
    # MQTT v5 in-flight window: at least a few times [ingest] batch_max, so the broker keeps sending while
    # one batch commits and the next is decoded (docs/performance.md)
    "receive_maximum": integer(1, 65535, 8000),
}
SOURCE = dict(MQTT_CLIENT, **{
    "type": one_of(SOURCE_TYPES), "name": string(minLength=1), "qos": one_of((0, 1, 2), 1),
    "topics": {"type": "array", "items": string(minLength=1), "minItems": 1},
    "shared_group": string(pattern=r"^[A-Za-z0-9_.-]{1,64}$", form="1-64 letters, digits or _.- (no / + #)"),
    # a stopping member of a shared group first takes what the broker still holds for it (mqtt_source.py)
    "drain_s": number(0, 600, 20),
})
SINK_COMMON = {
    "type": one_of(SINK_TYPES), "name": string(minLength=1), "timeout_s": number(0.1, 300, 10),
    "batch": integer(1, 1000), "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "token": string(), "token_file": PATH,
}
URL = string(pattern=r"^https?://[^\s/]+", form="an http:// or https:// URL")
SINKS = {
    "ngsi-ld": {"url": URL, "tenant": string(), "data_provider": string(),
                "id_prefix": string(pattern="^urn:", form="a URN (urn:...)"),
                "context": {"oneOf": [URL, {"type": "array", "items": URL, "minItems": 1}]}},
    "sensorthings": {"url": URL},
    "mqtt": dict(MQTT_CLIENT, topic=string("vistelse/{site}/{dev_eui}/report"), qos=one_of((0, 1, 2), 1),
                 retain=boolean(False)),
    "webhook": {"url": URL},
}
SINK = {"type": "object", "required": ["type"], "properties": {"type": one_of(SINK_TYPES)},
        "allOf": [{"if": {"properties": {"type": {"const": t}}},
                   "then": section(dict(SINK_COMMON, **keys), required=["url"] if "url" in keys and t != "mqtt"
                                   else [])}
                  for t, keys in SINKS.items()]}
TOKEN = section({"name": string(minLength=1), "token": string(), "token_file": PATH})

SCHEMA = section({
    "gateway": section({
        "state_dir": PATH, "log_level": one_of(("debug", "info", "warning", "error"), "info"),
        "name": string("vistelse-gateway"), "timezone": string("Europe/Stockholm"),
        # this instance's name when several share one database (default: $VISTELSE_INSTANCE, else the host name)
        "instance": string(pattern="^" + INSTANCE_NAME + "$", form="1-64 letters, digits or _.@-"),
    }),
    "store": section({
        "backend": one_of(("sqlite",), "sqlite"), "path": string("gateway.sqlite", minLength=1),
        "synchronous": one_of(("full", "normal", "extra"), "full"),
        # PostgreSQL (several instances on one database): the URL, or a file holding it (with a password)
        "url": string(pattern=r"^postgres(ql)?://", form="a postgresql://... URL (leave it out for SQLite)"),
        "url_file": PATH,
    }),
    "retention": section({
        "raw_hours": number(1, 24 * 365, 72), "purge_every_s": number(1, 86400, 600),
        "justification": string(""),
        # quarantined (rejected) messages: their own retention and a bound in bytes
        "quarantine_days": number(1, 3650, 30), "quarantine_max_bytes": integer(1 << 20, 1 << 40, 64 << 20),
    }),
    "ingest": section({
        "batch_max": integer(1, 10000, 2000), "replay_window": integer(1, 32767, 4096),
        "keep_raw_body": boolean(True), "quarantine_body_max_bytes": integer(1024, 16 << 20, 64 * 1024),
        "workers": {"oneOf": [{"const": "auto"}, integer(0, 16)], "default": "auto"},
    }),
    "source": {"type": "array", "items": section(SOURCE, required=["type"])},
    "sink": {"type": "array", "items": SINK},
    "outbox": section({"backoff_min_s": number(0.01, 3600, 1.0), "backoff_max_s": number(0.01, 86400, 60.0)}),
    "http": section({
        "enabled": boolean(True), "listen": _with_default(HOST_PORT, "127.0.0.1:8080", {}),
        "public_url": string("", pattern=r"^(https?://[^\s]+)?$",
                             form="the https:// address the gateway is reached at"),
        # limits of the HTTP server (docs/gateway.md, "HTTP server")
        "max_connections": integer(8, 10000, 200), "header_timeout_s": number(1, 300, 10),
        "body_timeout_s": number(1, 600, 30), "keep_alive_s": integer(1, 300, 5),
        "max_header_bytes": integer(4096, 1 << 20, 16384), "max_ingest_bytes": integer(1024, 16 << 20, 256 * 1024),
        "ingest_wait_s": number(0.1, 30, 3), "store_threads": integer(1, 64, 4),
        "spool_max_bytes": integer(1 << 20, 1 << 40, 256 << 20),
    }),
    "auth": section({"operator": {"type": "array", "items": TOKEN},
                     "ingest": {"type": "array", "items": TOKEN}}),
    "register": section({
        "title": string("Sensor register"), "owner": string(""), "contact": string(""), "purpose": string(""),
        "legal_basis": string(""), "review_interval_days": integer(1, 3650, 365),
    }),
    # receipts (fPort 3): which intervals are stored, so nodes send the missing ones again
    # (gateway/vistelse_gateway/receipts.py); through the [downlink] path
    "receipts": section({
        "enabled": boolean(False), "max_per_day": integer(1, 100, 8), "every_h": number(0.5, 48, 4),
        "min_gap_min": number(0, 1440, 180),
        # a gap holds the device's later intervals back from the sinks at most this long
        # (gateway/vistelse_gateway/store/order.py); 0 forwards at once, out of order
        "hold_back_h": number(0, 72, 26),
    }),
    "downlink": section({
        "via": one_of(("chirpstack-grpc", "chirpstack-mqtt", "tts")), "chirpstack_grpc": HOST_PORT,
        "chirpstack_token": string(), "chirpstack_token_file": PATH, "chirpstack_tls": boolean(False),
        "tts_url": URL, "tts_webhook_id": string("vistelse"), "tts_api_key": string(), "tts_api_key_file": PATH,
    }),
})
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _where(path):
    out = ""
    for p in path:
        out += "[%d]" % p if isinstance(p, int) else ("." if out else "") + str(p)
    return out or "(top level)"


def _message(err):
    where = _where(err.absolute_path)
    v, value, schema = err.validator, err.instance, err.schema
    if v == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(known))
        keys = ", ".join((where + "." if err.absolute_path else "") + k for k in extra)
        return "unknown key %s (known here: %s)" % (keys, ", ".join(known))
    if v == "type":
        kind = {"string": "a string", "integer": "a whole number", "number": "a number", "boolean":
                "true or false (without quotes)", "object": "a table", "array": "an array"}
        want = schema["type"]
        return "%s must be %s, not %r" % (where, kind.get(want, want), value)
    if v == "enum":
        return "%s must be one of %s, not %r" % (where, ", ".join(repr(x) for x in schema["enum"]), value)
    if v in ("minimum", "maximum"):
        return "%s must be between %s and %s, not %r" % (where, schema.get("minimum"), schema.get("maximum"), value)
    if v == "pattern":
        return "%s must be %s, not %r" % (where, schema.get("x-form", "of the form " + schema["pattern"]), value)
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return "%s.%s is required" % (where, missing)
    if v == "oneOf":
        return "%s: %r is not a valid value" % (where, value)
    return "%s: %s" % (where, err.message)


def validate(doc):
    """Raise ConfigError naming every key that is wrong (schema only)."""
    errors = sorted(VALIDATOR.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    if errors:
        # an error inside oneOf/allOf is more precise than the summary around it
        leaves = []
        for e in errors:
            deepest = e
            while deepest.context:
                deepest = min(deepest.context, key=lambda c: (-len(c.absolute_path), c.validator == "type"))
            leaves.append(_message(deepest))
        raise ConfigError("; ".join(dict.fromkeys(leaves)))


def defaults(schema, given):
    """A section with the schema's defaults filled in."""
    out = {k: s["default"] for k, s in schema["properties"].items() if "default" in s}
    out.update(given)
    return out


# -- loading -------------------------------------------------------------------------
def _read_secret(section_, where, key="token"):
    """token = "..." or token_file = "/etc/..." (preferred: not in the config)."""
    if section_.get(key + "_file"):
        path = section_[key + "_file"]
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip()
        except OSError as exc:
            raise ConfigError("%s.%s_file: cannot read %s: %s" % (where, key, path, exc.strerror)) from None
    return section_.get(key)


def load(path):
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("config file %s does not exist (start from %s)" % (path, EXAMPLE)) from None
    except OSError as exc:
        raise ConfigError("cannot read %s: %s" % (path, exc.strerror)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("%s is not valid TOML: %s" % (path, exc)) from None
    return check(doc, base=os.path.dirname(os.path.abspath(path)))


def load_for(command, path):
    """The checked configuration for a command line tool, or None after
    telling the operator why (the tool then exits with status 2)."""
    try:
        return load(path)
    except ConfigError as exc:
        sys.stderr.write("%s: configuration error: %s\n" % (command, exc))
        return None


def _resolve_files(node, base, where=""):
    """Make every *_file path relative to the configuration file's directory, and check
    that it can be read now (so `check` finds what `run` would stumble on later)."""
    if isinstance(node, dict):
        for k, v in node.items():
            here = "%s.%s" % (where, k) if where else k
            if k.endswith("_file") and isinstance(v, str) and v:
                node[k] = os.path.join(base, v)
                # [downlink] files are read by `vistelse downlink` only, not by the service
                if not here.startswith("downlink.") and not os.access(node[k], os.R_OK):
                    raise ConfigError("%s: cannot read %s" % (here, node[k]))
            else:
                _resolve_files(v, base, here)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _resolve_files(v, base, "%s[%d]" % (where, i))


def check(doc, base="."):
    validate(doc)
    _resolve_files(doc, base)
    p = SCHEMA["properties"]
    cfg = {}
    gw = defaults(p["gateway"], doc.get("gateway", {}))
    state_dir = os.path.join(base, gw.get("state_dir")
                             or os.environ.get("STATE_DIRECTORY", "/var/lib/vistelse-gateway"))
    # several instances on one database: each has its own name (systemd template: %i)
    instance = gw.get("instance") or os.environ.get("VISTELSE_INSTANCE") or socket.gethostname()
    if not re.fullmatch(INSTANCE_NAME, instance):
        raise ConfigError("gateway.instance must be 1-64 letters, digits or _.@- (it names MQTT sessions), not %r"
                          % instance)
    cfg["gateway"] = dict(gw, state_dir=state_dir, log_level=gw["log_level"].upper(), instance=instance)

    st = defaults(p["store"], doc.get("store", {}))
    # PostgreSQL for several instances: url = "postgresql://user@host/db" (or url_file, if it holds a
    # password); without it, the SQLite file
    cfg["store"] = dict(st, path=os.path.join(state_dir, st["path"]), url=_read_secret(st, "store", "url") or "")
    if cfg["store"]["url"] and not cfg["store"]["url"].startswith(("postgresql://", "postgres://")):
        raise ConfigError("store.url_file must hold a postgresql://... URL")

    cfg["retention"] = defaults(p["retention"], doc.get("retention", {}))
    if cfg["retention"]["raw_hours"] > 72 and not cfg["retention"]["justification"].strip():
        raise ConfigError("retention.raw_hours is above 72: IMY expects a specific justification; "
                          "write it in retention.justification")

    ing = defaults(p["ingest"], doc.get("ingest", {}))
    if ing["workers"] == "auto":     # parse/decode processes: 1 with 2+ CPUs
        ing["workers"] = 1 if (os.cpu_count() or 1) >= 2 else 0
    cfg["ingest"] = ing

    cfg["sources"] = []
    for i, s in enumerate(doc.get("source", [])):
        where = "source[%d]" % i
        s = defaults({"properties": SOURCE}, s)
        s["network"] = s["type"].split("-")[0]
        s.setdefault("name", s["type"] if i == 0 else "%s-%d" % (s["type"], i))
        if s.get("shared_group") is not None:
            # MQTT v5 shared subscription $share/<group>/...: the broker hands each message to one
            # member of the group; every instance needs its own session, so its own client id
            if s["protocol"] != "5":
                raise ConfigError("%s.shared_group needs MQTT protocol 5" % where)
            s.setdefault("client_id", "vistelse-gateway-%s-%s" % (s["name"], cfg["gateway"]["instance"]))
        if s.get("password_file"):
            s["password"] = _read_secret(s, where, "password")
        cfg["sources"].append(s)
    names = [s["name"] for s in cfg["sources"]]
    if len(set(names)) != len(names):
        raise ConfigError("two [[source]] tables have the same name; give each a distinct name")

    cfg["sinks"] = []
    for i, s in enumerate(doc.get("sink", [])):
        where = "sink[%d]" % i
        s = defaults({"properties": dict(SINK_COMMON, **SINKS[s["type"]])}, s)
        s.setdefault("name", s["type"])
        if s.get("token_file"):
            s["token"] = _read_secret(s, where)
        if s.get("password_file"):
            s["password"] = _read_secret(s, where, "password")
        cfg["sinks"].append(s)

    names = [s["name"] for s in cfg["sinks"]]
    if len(set(names)) != len(names):
        raise ConfigError("two [[sink]] tables have the same name; give each a distinct name")

    cfg["outbox"] = defaults(p["outbox"], doc.get("outbox", {}))
    if cfg["outbox"]["backoff_max_s"] < cfg["outbox"]["backoff_min_s"]:
        raise ConfigError("outbox.backoff_max_s must not be below outbox.backoff_min_s")

    http = defaults(p["http"], doc.get("http", {}))
    host, _, port = http["listen"].rpartition(":")
    if not 0 <= int(port) <= 65535:
        raise ConfigError("http.listen: port must be 0..65535")
    cfg["http"] = dict(http, host=host.strip("[]"), port=int(port))

    auth = doc.get("auth", {})
    tokens = {}
    for role in ("operator", "ingest"):
        for j, t in enumerate(auth.get(role, [])):
            where = "auth.%s[%d]" % (role, j)
            token = _read_secret(t, where)
            if not token or len(token) < 16:
                raise ConfigError("%s: a token of at least 16 characters is required" % where)
            if token in tokens:
                raise ConfigError("%s: the same token is given twice" % where)
            tokens[token] = (t.get("name", "%s-%d" % (role, j)), role)
    cfg["auth"] = {"tokens": tokens}
    if cfg["http"]["enabled"] and not any(r == "operator" for _, r in tokens.values()):
        raise ConfigError("no [[auth.operator]] token: the operator surface needs at least one")

    for s in cfg["sinks"]:          # the NGSI-LD sink names our @context by the gateway's public address
        s.setdefault("public_url", cfg["http"]["public_url"])
    cfg["register"] = defaults(p["register"], doc.get("register", {}))
    cfg["downlink"] = defaults(p["downlink"], doc.get("downlink", {}))
    cfg["receipts"] = defaults(p["receipts"], doc.get("receipts", {}))
    return cfg
