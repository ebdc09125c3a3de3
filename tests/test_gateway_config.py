"""gateway.toml is checked by one schema (vistelse_gateway.config.SCHEMA): every key is
covered here with a good and a bad value, and `check` and `run` refuse the same mistakes."""
import pytest

from vistelse_gateway import config as config_mod
from vistelse_gateway.config import SCHEMA, SINKS, ConfigError
from vistelse_gateway.service import main

TOKEN = [{"name": "ops", "token": "operator-token-0123456789"}]


def _leaves(schema, path=()):
    """(path, leaf schema) for every key, descending into tables, arrays of tables and sink types."""
    if "allOf" in schema:                               # [[sink]]: one table per type
        for branch in schema["allOf"]:
            kind = branch["if"]["properties"]["type"]["const"]
            for p, s, _ in _leaves(branch["then"], path):
                yield p, s, kind
        return
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict) and (
            "properties" in schema["items"] or "allOf" in schema["items"]):
        yield from _leaves(schema["items"], path + (0,))
        return
    if "properties" in schema and schema.get("additionalProperties") is False:
        for k, s in schema["properties"].items():
            yield from _leaves(s, path + (k,))
        return
    yield path, schema, None


def _good(schema):
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if "oneOf" in schema:
        return _good(schema["oneOf"][0])
    if "const" in schema:
        return schema["const"]
    t = schema.get("type")
    if t == "string":
        pattern = schema.get("pattern", "")
        if pattern.startswith("^https?"):
            return "http://127.0.0.1:1"
        if pattern.startswith("^urn"):
            return "urn:x"
        if pattern.startswith("^postgres"):
            return "postgresql://vistelse@localhost/vistelse"
        if ":[0-9]" in pattern:
            return "127.0.0.1:9"
        return "x"
    if t in ("integer", "number"):
        return schema["minimum"]
    if t == "boolean":
        return True
    if t == "array":
        return [_good(schema["items"])]
    if t == "object":
        return {}
    raise AssertionError("no good value for %r" % schema)


def _bad(schema):
    t = schema.get("type")
    if t in ("integer", "number"):
        return schema["maximum"] + 1 if "maximum" in schema else "many"
    if t == "boolean":
        return "false"                                   # a string boolean is not a boolean
    if "enum" in schema:
        return "nonsense"
    return [["not", "this"]]                             # wrong type for every other key


def _doc(path, value, sink_type=None):
    doc = {"gateway": {"state_dir": "."}, "auth": {"operator": [dict(TOKEN[0])]}}
    node = doc
    for i, p in enumerate(path[:-1]):
        if p == 0:
            continue
        nxt = path[i + 1]
        if nxt == 0:
            base = {"sink": {"type": sink_type, "url": "http://127.0.0.1:1"}, "source": {"type": "chirpstack-mqtt"},
                    "operator": dict(TOKEN[0]), "ingest": {"token": "ingest-token-0123456789"}}.get(p, {})
            if sink_type == "mqtt" and p == "sink":
                base.pop("url")
            node.setdefault(p, [dict(base)])
            node = node[p][0]
        else:
            node = node.setdefault(p, {})
    node[path[-1]] = value
    return doc


LEAVES = list(_leaves(SCHEMA))


def _id(leaf):
    path, _, kind = leaf
    return ".".join(str(p) for p in path) + ("(%s)" % kind if kind else "")


@pytest.mark.parametrize("leaf", LEAVES, ids=[_id(x) for x in LEAVES])
def test_every_key_accepts_a_good_value_and_names_itself_on_a_bad_one(tmp_path, leaf):
    path, schema, kind = leaf
    if path[-1].endswith("_file"):
        (tmp_path / "secret").write_text("postgresql://vistelse:secret@db.example/vistelse"
                                         if path == ("store", "url_file") else "another-token-0123456789")
        good = str(tmp_path / "secret")
    elif path[-1] == "token" and path[0] == "auth":
        good = "another-token-0123456789"
    elif path == ("gateway", "state_dir"):
        good = str(tmp_path)
    else:
        good = _good(schema)
    if path == ("sink", 0, "type") or path == ("source", 0, "type"):
        good = kind or good
    config_mod.check(_doc(path, good, kind), base=str(tmp_path))
    with pytest.raises(ConfigError) as exc:
        config_mod.check(_doc(path, _bad(schema), kind), base=str(tmp_path))
    where = ".".join(str(p) for p in path if p != 0)
    assert where.split(".")[-1] in str(exc.value), (where, str(exc.value))


def test_every_sink_type_is_in_the_schema():
    assert set(SINKS) == set(config_mod.SINK_TYPES)


@pytest.mark.parametrize("text,message", [
    ('[http]\nlistn = "0.0.0.0:80"\n', "unknown key http.listn"),
    ('[ingest]\nkeep_raw_body = "false"\n', "ingest.keep_raw_body must be true or false"),
    ('[ingest]\nbatch_max = "many"\n', "ingest.batch_max must be a whole number"),
    ('[store]\nsynchronous = "fast"\n', "store.synchronous must be one of"),
    ('[[source]]\ntype = "chirpstack-mqtt"\nport = "1883"\n', "source[0].port must be a whole number"),
    ('[[source]]\ntype = "chirpstack-mqtt"\nhots = "x"\n', "unknown key source[0].hots"),
    ('[[sink]]\ntype = "ngsi-ld"\nurl = "http://x"\ntenat = "city"\n', "unknown key sink[0].tenat"),
    ('[[sink]]\ntype = "sensorthings"\nurl = "frost.example"\n', "sink[0].url"),
    ('[gateway]\nname = 5\n', "gateway.name must be a string"),
    ('[http]\nmax_connections = 3\n', "http.max_connections must be between 8 and 10000"),
    ('[[source]]\ntype = "chirpstack-mqtt"\ntls = { ca_file = "missing-ca.pem" }\n',
     "source[0].tls.ca_file: cannot read"),
    ('[[sink]]\ntype = "webhook"\nurl = "http://a"\n[[sink]]\ntype = "webhook"\nurl = "http://b"\n',
     "same name"),
])
def test_check_and_run_refuse_the_same_mistakes(tmp_path, capsys, text, message):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('[[auth.operator]]\ntoken = "operator-token-0123456789"\n' + text
                   + ('\n[gateway]\nstate_dir = "."\n' if "[gateway]" not in text else 'state_dir = "."\n'))
    for command in (["check"], ["run"], []):
        assert main(["--config", str(cfg)] + command) == 2, command
        err = capsys.readouterr().err
        assert "configuration error" in err and message in err, (command, err)


def test_sinks_hold_a_gap_back_only_while_receipts_bring_missing_intervals_back():
    """[receipts] hold_back_h bounds how long a device's later intervals wait for a missing
    one before going to the sinks (store/order.py); without receipts nothing comes back."""
    from vistelse_gateway.receipts import GIVE_UP_S, hold_back_s
    base = {"http": {"enabled": False}, "source": [{"type": "chirpstack-mqtt"}]}
    assert hold_back_s(config_mod.check(base)) == 0.0
    on = config_mod.check(dict(base, receipts={"enabled": True}))
    assert on["receipts"]["hold_back_h"] * 3600 == GIVE_UP_S == hold_back_s(on)   # past the node's 24 h
    assert hold_back_s(config_mod.check(dict(base, receipts={"enabled": True, "hold_back_h": 2}))) == 7200
    assert hold_back_s(config_mod.check(dict(base, receipts={"enabled": True, "hold_back_h": 0}))) == 0.0
    with pytest.raises(ConfigError, match="hold_back_h"):
        config_mod.check(dict(base, receipts={"enabled": True, "hold_back_h": -1}))
