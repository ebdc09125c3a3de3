"""`vistelse downlink DEVEUI --interval 300 ...`: send a configuration to a node.

Examples:
    vistelse downlink 70b3d57ed0000001 --interval 600
    vistelse downlink 70b3d57ed0000001 --zone "0:-2000,500 2000,500 2000,5000" --delete-zone 1
    vistelse downlink 70b3d57ed0000001 --line "0:-1500,3000,1500,3000" --min-count 5 --via chirpstack-mqtt
    vistelse downlink 70b3d57ed0000001 --rotate 2                  # ToF: what the walk test found

Units: --interval and --still-hold in seconds; coordinates in millimetres on the floor.
"""
import argparse
import json
import sys

import vistelse_codec

from . import config as config_mod
from . import downlink
from .documents.facts import K_MAX, K_MIN
from .store import StoreError, open_store


def _zone(text):
    idx, _, pts = text.partition(":")
    coords = [[int(v) for v in p.split(",")] for p in pts.replace(";", " ").split()]
    if any(len(c) != 2 for c in coords):
        raise argparse.ArgumentTypeError("zone vertices are x,y pairs separated by spaces")
    return {"index": int(idx), "polygon_mm": coords}


def _line(text):
    idx, _, pts = text.partition(":")
    v = [int(x) for x in pts.replace(";", ",").split(",") if x.strip()]
    if len(v) != 4:
        raise argparse.ArgumentTypeError("a line is INDEX:ax,ay,bx,by")
    return {"index": int(idx), "a_mm": v[:2], "b_mm": v[2:]}


def parser():
    p = argparse.ArgumentParser(prog="vistelse downlink", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dev_eui")
    p.add_argument("--config", "-c", default="gateway.toml", help="the gateway's configuration (default %(default)s)")
    p.add_argument("--interval", type=int, help="reporting interval in SECONDS (60..86400)")
    p.add_argument("--min-count", type=int, help="k of the privacy guarantee: people per released record (3-50)")
    p.add_argument("--mode", choices=sorted(vistelse_codec.SENSOR_MODES.values()), help="sensor mode")
    p.add_argument("--still-hold", type=int, help="keep a still person this many SECONDS (0..3600)")
    p.add_argument("--rotate", type=int, choices=(0, 1, 2, 3),
                   help="ToF orientation: quarter turns counter-clockwise, as the walk test found "
                        "(docs/evaluation.md); sent with --mirror or without it")
    p.add_argument("--mirror", action="store_true", help="ToF orientation: the grid's columns are mirrored")
    p.add_argument("--zone", type=_zone, action="append", default=[], help='"INDEX:x,y x,y x,y ..." (mm)')
    p.add_argument("--delete-zone", type=int, action="append", default=[])
    p.add_argument("--line", type=_line, action="append", default=[], help='"INDEX:ax,ay,bx,by" (mm)')
    p.add_argument("--delete-line", type=int, action="append", default=[])
    p.add_argument("--config-version", type=int, help="default: one more than the last known")
    p.add_argument("--via", choices=("chirpstack-grpc", "chirpstack-mqtt", "tts"),
                   help="default: [downlink] via in the configuration, else by the device's network")
    p.add_argument("--dry-run", action="store_true", help="print the frame, send nothing")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    cfg = config_mod.load_for("vistelse downlink", args.config)
    if cfg is None:
        return 2
    eui = args.dev_eui.lower()
    try:
        store = open_store(cfg["store"])
    except StoreError as exc:
        sys.stderr.write("vistelse downlink: %s\n" % exc)
        return 2
    try:
        device = store.get_device(eui)
        if device is None:
            sys.stderr.write("vistelse downlink: %s is not in the registry\n" % eui)
            return 2
        version = args.config_version or downlink.next_version(store, eui)
        conf = {"config_version": version}
        if args.interval is not None:
            conf["interval_s"] = args.interval
        if args.min_count is not None:
            if not K_MIN <= args.min_count <= K_MAX:
                sys.stderr.write("vistelse downlink: --min-count is k, people per released record: %d to %d "
                                 "(nodes reject other values; docs/privacy.md)\n" % (K_MIN, K_MAX))
                return 2
            conf["min_count"] = args.min_count
        if args.mode:
            conf["sensor_mode"] = args.mode
        if args.still_hold is not None:
            conf["still_hold_s"] = args.still_hold
        if args.rotate is not None or args.mirror:
            # the whole orientation, as `vistelse provision --rotate N [--mirror]` writes it
            conf["orientation"] = {"rotate": args.rotate or 0, "mirror": args.mirror}
        zones = args.zone + [{"index": i, "delete": True} for i in args.delete_zone]
        lines = args.line + [{"index": i, "delete": True} for i in args.delete_line]
        if zones:
            conf["zones"] = zones
        if lines:
            conf["lines"] = lines
        if len(conf) == 1:
            sys.stderr.write("vistelse downlink: nothing to change (give --interval, --zone, ...)\n")
            return 2
        try:
            data = downlink.encode(conf, eui, store.device_key(eui))
        except downlink.DownlinkError as exc:
            sys.stderr.write("vistelse downlink: %s\n" % exc)
            return 2
        via = args.via or downlink.default_via(cfg, device)
        if args.dry_run:
            print(json.dumps({"dev_eui": eui, "via": via, "config": conf, "frame_hex": data.hex(),
                              "bytes": len(data)}, indent=1))
            return 0
        try:
            detail = downlink.send(cfg, device, data, via=via)
        except config_mod.ConfigError as exc:
            sys.stderr.write("vistelse downlink: configuration error: %s\n" % exc)
            return 2
        except downlink.DownlinkError as exc:
            store.add_downlink({"dev_eui": eui, "config_version": version, "config": conf, "via": via,
                                "status": "failed", "detail": str(exc)})
            sys.stderr.write("vistelse downlink: %s\n" % exc)
            return 1
        store.add_downlink({"dev_eui": eui, "config_version": version, "config": conf, "via": via,
                            "status": "pending", "detail": str(detail)})
        print("configuration version %d for %s enqueued via %s (%d bytes); pending until an uplink reports it"
              % (version, eui, via, len(data)))
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
