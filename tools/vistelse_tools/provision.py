"""`vistelse provision`: give a new node its identity, everywhere it is needed.

One command per node:

1. creates the node's secrets: the LoRaWAN AppKey (OTAA) and the 32-byte
   tag key that signs its reports;
2. registers the device in ChirpStack through its gRPC API (device under an
   application and device profile, OTAA keys), when an address and an API
   token are given;
3. adds it to the gateway's device registry with its tag key and its entry
   in the public sensor register;
4. writes the node's configuration file (`vistelse.json`, copied to the
   board by `vistelse deploy`) and keeps the tag key in a file readable by
   its owner only.

The tag key is never sent to the network server: that is the point of it.
"""
import argparse
import datetime
import json
import os
import secrets
import sys

SENSORS = ("ld2450", "vl53l5cx")
BOARDS = ("esp32_devkitc", "esp32_wrover", "weact_h743", "nucleo_f446re")


def new_secrets(dev_eui=None):
    """DevEUI (if not given, a random locally administered one), AppKey, tag key."""
    if dev_eui is None:
        raw = bytearray(secrets.token_bytes(8))
        raw[0] = (raw[0] | 0x02) & 0xFE  # locally administered, unicast (IEEE EUI-64)
        dev_eui = raw.hex()
    dev_eui = dev_eui.lower()
    if len(dev_eui) != 16 or any(c not in "0123456789abcdef" for c in dev_eui):
        raise ValueError("DevEUI must be 16 hex digits")
    return {"dev_eui": dev_eui, "join_eui": "0000000000000000",
            "app_key": secrets.token_bytes(16).hex(), "tag_key": secrets.token_bytes(32).hex()}


def node_config(ids, board, sensor, zones=(), lines=(), interval_s=300, min_count=5, height_mm=None, rotate=0,
                mirror=False):
    """The node's configuration file: identity, secrets, factory configuration.

    `zones` are lists of [x, y] points in floor millimetres and `lines` are
    [[ax, ay], [bx, by]], in the sensor's frame (docs/payload.md). `rotate`
    (quarter turns) and `mirror` orient a ToF sensor's zones on its mount
    (confirmed by the walk test, docs/evaluation.md).
    """
    return {
        "format": "vistelse-node", "version": 1,
        "dev_eui": ids["dev_eui"], "join_eui": ids["join_eui"],
        "app_key": ids["app_key"], "tag_key": ids["tag_key"],
        "board": board, "sensor": sensor, "region": "EU868",
        # the sensor's height above the floor; the ToF turns it into floor millimetres
        "mount": dict({"height_mm": height_mm or (2800 if sensor == "vl53l5cx" else 1800)},
                      **({"resolution": 8, "fov_deg": 45, "rotate": rotate % 4, "mirror": bool(mirror)}
                         if sensor == "vl53l5cx" else {})),
        "config": {"config_version": 0, "interval_s": interval_s, "min_count": min_count,
                   "zones": [list(map(list, z)) for z in zones],
                   "lines": [list(map(list, l)) for l in lines]},
    }


def register_chirpstack(target, token, ids, name, application_id, device_profile_id,
                        description="", tags=None, tls=False, timeout=10):
    """Create the device and its OTAA keys in ChirpStack v4 (gRPC API)."""
    import grpc
    from chirpstack_api import api

    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if tls else grpc.insecure_channel(target)
    auth = [("authorization", "Bearer %s" % token)]
    try:
        stub = api.DeviceServiceStub(channel)
        stub.Create(api.CreateDeviceRequest(device=api.Device(
            dev_eui=ids["dev_eui"], name=name, description=description, application_id=application_id,
            device_profile_id=device_profile_id, join_eui=ids["join_eui"], tags=dict(tags or {}))),
            metadata=auth, timeout=timeout)
        # LoRaWAN 1.0.x devices: ChirpStack takes the AppKey in nwk_key.
        stub.CreateKeys(api.CreateDeviceKeysRequest(device_keys=api.DeviceKeys(
            dev_eui=ids["dev_eui"], nwk_key=ids["app_key"])), metadata=auth, timeout=timeout)
    except grpc.RpcError as exc:
        raise RuntimeError("ChirpStack refused: %s %s" % (exc.code().name, exc.details())) from None
    finally:
        channel.close()


def open_registry(gateway_config):
    """The gateway's store, from its gateway.toml (raises ConfigError)."""
    from vistelse_gateway import config as config_mod
    from vistelse_gateway.store import open_store

    return open_store(config_mod.load(gateway_config)["store"])


def write_private(path, text):
    """Write a secret file readable by its owner only (0600), atomically."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _parser():
    p = argparse.ArgumentParser(prog="vistelse provision", description=__doc__.splitlines()[0])
    p.add_argument("--dev-eui", help="the modem's DevEUI (16 hex digits); a random one if not given")
    p.add_argument("--name", required=True, help="device name, e.g. stortorget-north")
    p.add_argument("--board", choices=BOARDS, default="esp32_devkitc")
    p.add_argument("--sensor", choices=SENSORS, default="ld2450")
    p.add_argument("--out", default=".", help="folder for vistelse.json and the tag key (default: here)")
    p.add_argument("--zones", default="[]", help="JSON list of polygons [[x, y], ...] in floor mm")
    p.add_argument("--lines", default="[]", help="JSON list of lines [[ax, ay], [bx, by]] in floor mm")
    p.add_argument("--interval", type=int, default=300, help="reporting interval in SECONDS (default 300)")
    p.add_argument("--height-mm", type=int, help="sensor height above the floor in mm (default 1800 radar, 2800 ToF)")
    p.add_argument("--rotate", type=int, choices=(0, 1, 2, 3), default=0,
                   help="ToF: quarter turns (counter-clockwise, seen from above) of the sensor on its mount")
    p.add_argument("--mirror", action="store_true", help="ToF: the zones' columns are mirrored (walk test)")
    net = p.add_argument_group("network server (ChirpStack v4)")
    net.add_argument("--network", choices=("chirpstack", "tts"), default="chirpstack")
    net.add_argument("--application", required=True,
                     help="ChirpStack application id, or The Things Stack app@tenant")
    net.add_argument("--chirpstack", metavar="HOST:PORT", help="ChirpStack gRPC API; omit to skip registration there")
    net.add_argument("--token-file", help="file holding a ChirpStack API token")
    net.add_argument("--device-profile", help="ChirpStack device-profile id")
    net.add_argument("--tls", action="store_true", help="use TLS to the ChirpStack API")
    reg = p.add_argument_group("gateway registry and public sensor register")
    reg.add_argument("--gateway-config", help="the gateway's gateway.toml; omit to skip the registry")
    reg.add_argument("--site", default="", help="where the node is, in words")
    reg.add_argument("--location", help="lat,lon")
    reg.add_argument("--purpose", default="Measure how many people use the place and how long they stay")
    reg.add_argument("--legal-basis", default="Public interest task (GDPR art. 6.1 e); no personal data leaves the sensor")
    reg.add_argument("--retention", default="Raw uplinks 72 hours; aggregate counts kept as statistics")
    reg.add_argument("--owner", default="")
    reg.add_argument("--contact", default="")
    reg.add_argument("--installed", default=datetime.date.today().isoformat(), help="YYYY-MM-DD")
    reg.add_argument("--review-due", help="YYYY-MM-DD; default one year after installation")
    return p


def _parse_date(text, what):
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise SystemExit("vistelse provision: %s must be YYYY-MM-DD, not %r" % (what, text))


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        ids = new_secrets(args.dev_eui)
        zones, lines = json.loads(args.zones), json.loads(args.lines)
    except ValueError as exc:
        sys.stderr.write("vistelse provision: %s\n" % exc)
        return 2
    if not 60 <= args.interval <= 86400:
        sys.stderr.write("vistelse provision: --interval is in seconds, 60 to 86400\n")
        return 2
    installed = _parse_date(args.installed, "--installed")
    review_due = _parse_date(args.review_due, "--review-due") if args.review_due else \
        installed.replace(year=installed.year + 1)
    measures = "visits, person-seconds, occupancy, dwell-time distribution, line crossings"
    if args.sensor == "vl53l5cx":
        measures += ", child/adult share"
    entry = {
        "network": args.network, "application": args.application, "name": args.name, "site": args.site,
        "meta": {"sensor": args.sensor, "board": args.board, "zones": zones, "lines": lines,
                 "location": args.location,
                 # the factory configuration, for the site's documents (vistelse documents)
                 "config": {"config_version": 0, "interval_s": args.interval, "min_count": 5}},
        "register": {"measures": measures, "purpose": args.purpose, "legal_basis": args.legal_basis,
                     "retention": args.retention, "owner": args.owner, "contact": args.contact,
                     "installed": installed.isoformat(), "review_due": review_due.isoformat(),
                     "sensor": args.sensor, "personal_data": "none leaves the sensor"},
    }
    if args.chirpstack and not (args.token_file and args.device_profile):
        sys.stderr.write("vistelse provision: --chirpstack needs --token-file and --device-profile\n")
        return 2
    # Open the registry before touching the network server, so that a bad
    # gateway configuration leaves nothing half-provisioned.
    registry = None
    if args.gateway_config:
        from vistelse_gateway.config import ConfigError
        try:
            registry = open_registry(args.gateway_config)
        except ConfigError as exc:
            sys.stderr.write("vistelse provision: gateway configuration: %s\n" % exc)
            return 2
    try:
        return _provision(args, ids, entry, zones, lines, review_due, registry)
    finally:
        if registry is not None:
            registry.close()


def _provision(args, ids, entry, zones, lines, review_due, registry):
    if args.chirpstack:
        with open(args.token_file) as f:
            token = f.read().strip()
        try:
            register_chirpstack(args.chirpstack, token, ids, args.name, args.application, args.device_profile,
                                description=args.site, tags={"site": args.site, "sensor": args.sensor},
                                tls=args.tls)
        except RuntimeError as exc:
            sys.stderr.write("vistelse provision: %s\n" % exc)
            return 1
        print("ChirpStack: device %s created with OTAA keys" % ids["dev_eui"])
    if registry is not None:
        actor = "provision:%s" % os.environ.get("USER", os.getuid())
        registry.put_device(dict(entry, dev_eui=ids["dev_eui"]), bytes.fromhex(ids["tag_key"]), actor)
        print("gateway registry: device %s added (review due %s)" % (ids["dev_eui"], review_due))
    os.makedirs(args.out, exist_ok=True)
    config_path = os.path.join(args.out, "vistelse.json")
    key_path = os.path.join(args.out, "%s.tagkey" % ids["dev_eui"])
    write_private(config_path, json.dumps(node_config(ids, args.board, args.sensor, zones, lines, args.interval,
                                                    height_mm=args.height_mm, rotate=args.rotate,
                                                    mirror=args.mirror),
                                          indent=1) + "\n")
    write_private(key_path, ids["tag_key"] + "\n")
    print("node configuration: %s (copy to the board with `vistelse deploy`)" % config_path)
    print("tag key: %s (keep it secret; the gateway holds a copy)" % key_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
