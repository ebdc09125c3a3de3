"""gateway.toml: loading and checking. Every mistake gives a message naming the key."""
import os
import re
import socket
import tomllib


class ConfigError(Exception):
    pass


EXAMPLE = "gateway/vistelse_gateway/systemd/gateway.toml.example"
SOURCE_TYPES = ("chirpstack-mqtt", "tts-mqtt")
SINK_TYPES = ("ngsi-ld", "sensorthings", "mqtt", "webhook")


def _read_secret(section, where, key="token"):
    """token = "..." or token_file = "/etc/..." (preferred: not in the config)."""
    if section.get(key + "_file"):
        path = section[key + "_file"]
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip()
        except OSError as exc:
            raise ConfigError("%s.%s_file: cannot read %s: %s" % (where, key, path, exc.strerror)) from None
    return section.get(key)


def _table(doc, key, where="", default=None):
    value = doc.get(key, {} if default is None else default)
    if not isinstance(value, dict):
        raise ConfigError("%s[%s] must be a table" % (where, key))
    return value


def _number(section, key, where, default, lo=None, hi=None, integer=False):
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ConfigError("%s.%s must be a %s" % (where, key, "whole number" if integer else "number"))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError("%s.%s must be between %s and %s" % (where, key, lo, hi))
    return value


def _workers(ing):
    """Ingest worker processes (parsing and decoding off the store thread). "auto": 1 with 2+ CPUs."""
    value = ing.get("workers", "auto")
    if value == "auto":
        return 1 if (os.cpu_count() or 1) >= 2 else 0
    return _number(ing, "workers", "ingest", 0, 0, 16, True)


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


def _resolve_files(node, base):
    """Make every *_file path relative to the configuration file's directory."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k.endswith("_file") and isinstance(v, str) and v:
                node[k] = os.path.join(base, v)
            else:
                _resolve_files(v, base)
    elif isinstance(node, list):
        for v in node:
            _resolve_files(v, base)


def check(doc, base="."):
    _resolve_files(doc, base)
    known = {"gateway", "store", "retention", "ingest", "source", "sink", "http", "auth", "register", "outbox",
             "downlink"}
    unknown = set(doc) - known
    if unknown:
        raise ConfigError("unknown section(s): %s (known: %s)" % (", ".join(sorted(unknown)), ", ".join(sorted(known))))
    cfg = {}
    gw = _table(doc, "gateway")
    state_dir = gw.get("state_dir", os.environ.get("STATE_DIRECTORY", "/var/lib/vistelse-gateway"))
    if not isinstance(state_dir, str):
        raise ConfigError("gateway.state_dir must be a path")
    state_dir = os.path.join(base, state_dir)
    cfg["gateway"] = {"state_dir": state_dir, "log_level": str(gw.get("log_level", "info")).upper(),
                      "name": gw.get("name", "vistelse-gateway"),
                      # several instances on one database: each has its own name (systemd template: %i)
                      "instance": str(gw.get("instance") or os.environ.get("VISTELSE_INSTANCE")
                                      or socket.gethostname()),
                      "timezone": str(gw.get("timezone", "Europe/Stockholm"))}
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", cfg["gateway"]["instance"]):
        raise ConfigError("gateway.instance must be 1-64 letters, digits or _.@- (it names MQTT sessions)")
    if cfg["gateway"]["log_level"] not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("gateway.log_level must be debug, info, warning or error")

    st = _table(doc, "store")
    store = {"backend": st.get("backend", "sqlite"),
             "path": os.path.join(state_dir, st.get("path", "gateway.sqlite")),
             "synchronous": st.get("synchronous", "full"),
             # PostgreSQL for several instances: url = "postgresql://user@host/db" (or url_file, if it
             # holds a password); without it, the SQLite file above
             "url": _read_secret(st, "store", "url") or ""}
    if store["url"] and not store["url"].startswith(("postgresql://", "postgres://")):
        raise ConfigError("store.url must be a postgresql://... URL (leave it out for SQLite)")
    if store["backend"] != "sqlite":
        raise ConfigError("store.backend: only 'sqlite' is available in this version (or store.url for PostgreSQL)")
    if store["synchronous"] not in ("full", "normal", "extra"):
        raise ConfigError("store.synchronous must be full, normal or extra")
    cfg["store"] = store

    ret = _table(doc, "retention")
    cfg["retention"] = {"raw_hours": _number(ret, "raw_hours", "retention", 72, 1, 24 * 365),
                        "purge_every_s": _number(ret, "purge_every_s", "retention", 600, 1, 86400),
                        "justification": ret.get("justification", "")}
    if cfg["retention"]["raw_hours"] > 72 and not cfg["retention"]["justification"]:
        raise ConfigError("retention.raw_hours is above 72: IMY expects a specific justification; "
                          "write it in retention.justification")

    ing = _table(doc, "ingest")
    cfg["ingest"] = {"batch_max": _number(ing, "batch_max", "ingest", 500, 1, 10000, True),
                     "replay_window": _number(ing, "replay_window", "ingest", 4096, 1, 32767, True),
                     "keep_raw_body": bool(ing.get("keep_raw_body", True)),
                     "workers": _workers(ing)}

    sources = doc.get("source", [])
    if not isinstance(sources, list):
        raise ConfigError("[[source]] must be an array of tables")
    cfg["sources"] = []
    for i, s in enumerate(sources):
        where = "source[%d]" % i
        if s.get("type") not in SOURCE_TYPES:
            raise ConfigError("%s.type must be one of %s" % (where, ", ".join(SOURCE_TYPES)))
        s = dict(s)
        s["network"] = s["type"].split("-")[0]
        s.setdefault("name", s["type"] if i == 0 else "%s-%d" % (s["type"], i))
        if s.get("shared_group") is not None:
            # MQTT v5 shared subscription $share/<group>/...: the broker hands each message to one
            # member of the group; every instance needs its own session, so its own client id
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", str(s["shared_group"])):
                raise ConfigError("%s.shared_group must be 1-64 letters, digits or _.- (no / + #)" % where)
            if str(s.get("protocol", "5")) not in ("5", "5.0", "mqttv5"):
                raise ConfigError("%s.shared_group needs MQTT protocol 5" % where)
            s.setdefault("client_id", "vistelse-gateway-%s-%s" % (s["name"], cfg["gateway"]["instance"]))
        _number(s, "port", where, 1883, 1, 65535, True)
        if s.get("password_file"):
            s["password"] = _read_secret(s, where, "password")
        if "tls" in s and not isinstance(s["tls"], (dict, bool)):
            raise ConfigError("%s.tls must be a table (ca_file, cert_file, key_file) or true" % where)
        cfg["sources"].append(s)

    sinks = doc.get("sink", [])
    if not isinstance(sinks, list):
        raise ConfigError("[[sink]] must be an array of tables")
    cfg["sinks"] = []
    for i, s in enumerate(sinks):
        where = "sink[%d]" % i
        if s.get("type") not in SINK_TYPES:
            raise ConfigError("%s.type must be one of %s" % (where, ", ".join(SINK_TYPES)))
        s = dict(s)
        s.setdefault("name", s["type"])
        if s["type"] != "mqtt" and not s.get("url"):
            raise ConfigError("%s (%s): url is required" % (where, s["type"]))
        if s.get("token_file"):
            s["token"] = _read_secret(s, where)
        if s.get("password_file"):
            s["password"] = _read_secret(s, where, "password")
        cfg["sinks"].append(s)

    ob = _table(doc, "outbox")
    cfg["outbox"] = {"backoff_min_s": _number(ob, "backoff_min_s", "outbox", 1.0, 0.01, 3600),
                     "backoff_max_s": _number(ob, "backoff_max_s", "outbox", 60.0, 0.01, 86400)}

    http = _table(doc, "http")
    listen = http.get("listen", "127.0.0.1:8080")
    host, _, port = str(listen).rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("http.listen must be HOST:PORT, e.g. 127.0.0.1:8080")
    cfg["http"] = {"host": host.strip("[]"), "port": int(port), "enabled": bool(http.get("enabled", True)),
                   "public_url": http.get("public_url", "")}

    auth = _table(doc, "auth")
    tokens = {}
    for role in ("operator", "ingest"):
        entries = auth.get(role, [])
        if not isinstance(entries, list):
            raise ConfigError("[[auth.%s]] must be an array of tables with name and token or token_file" % role)
        for j, t in enumerate(entries):
            where = "auth.%s[%d]" % (role, j)
            token = _read_secret(t, where)
            if not token or len(token) < 16:
                raise ConfigError("%s: a token of at least 16 characters is required" % where)
            tokens[token] = (t.get("name", "%s-%d" % (role, j)), role)
    cfg["auth"] = {"tokens": tokens}
    if cfg["http"]["enabled"] and not any(r == "operator" for _, r in tokens.values()):
        raise ConfigError("no [[auth.operator]] token: the operator surface needs at least one")

    reg = _table(doc, "register")
    cfg["register"] = {"owner": reg.get("owner", ""), "contact": reg.get("contact", ""),
                       "purpose": reg.get("purpose", ""), "legal_basis": reg.get("legal_basis", ""),
                       "title": reg.get("title", "Sensor register"),
                       "review_interval_days": _number(reg, "review_interval_days", "register", 365, 1, 3650, True)}
    cfg["downlink"] = _table(doc, "downlink")
    return cfg
