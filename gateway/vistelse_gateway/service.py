"""`vistelse gateway`: run the service, and the operator's commands around it.

    vistelse gateway --config gateway.toml                 run in the foreground
    vistelse gateway --config gateway.toml check           check the configuration and exit
    vistelse gateway --config gateway.toml device add ...  register a device (key from a file)
    vistelse gateway --config gateway.toml device list | retire EUI | activate EUI
    vistelse gateway --config gateway.toml device import devices.toml
    vistelse gateway --config gateway.toml verify-log      check the access log's hash chain
    vistelse gateway --config gateway.toml purge           apply retention now
    vistelse gateway --config gateway.toml migrate         bring the database schema up to date
"""
import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import tomllib

from . import config as config_mod
from .forward import OutboxWorker, build_sinks
from .ingest.mqtt_source import MqttSource
from .metrics import Metrics
from .pipeline import Pipeline, tune_gc
from .receipts import hold_back_s
from .sdnotify import notify, watchdog_interval
from .store import StoreError, open_store

log = logging.getLogger("vistelse.gateway")


class Gateway:
    """Everything a running gateway is; tests start it in-process as well."""

    def __init__(self, cfg, config_path=None):
        self.cfg = cfg
        self.config_path = config_path
        self.metrics = Metrics(instance=cfg["gateway"]["instance"])
        self.store = open_store(cfg["store"], instance=cfg["gateway"]["instance"])
        self.sinks = build_sinks(cfg["sinks"], self.store)
        ob = cfg["outbox"]
        hold_s = hold_back_s(cfg)
        self.workers = [OutboxWorker(self.store, s, self.metrics, ob["backoff_min_s"], ob["backoff_max_s"],
                                     hold_s=hold_s) for s in self.sinks]
        ing = cfg["ingest"]
        self.pipeline = Pipeline(self.store, self.metrics, batch_max=ing["batch_max"],
                                 replay_window=ing["replay_window"], keep_raw_body=ing["keep_raw_body"],
                                 workers=ing["workers"], quarantine_body_max=ing["quarantine_body_max_bytes"],
                                 on_commit=[w.notify for w in self.workers],
                                 receipt_policy=cfg["receipts"] if cfg["receipts"]["enabled"] else None)
        self.receipts = None
        if cfg["receipts"]["enabled"]:
            from .downlink import ReceiptSender
            self.receipts = ReceiptSender(cfg)
            self.pipeline.on_receipt.append(self.receipts)
        self.sources = [MqttSource(s["name"], s, self.pipeline, self.metrics) for s in cfg["sources"]]
        for source in self.sources:
            source.others_running = lambda: bool(self.store.other_instances(cfg["gateway"]["instance"]))
        self.web = None
        if cfg["http"]["enabled"]:
            from .web import WebApp
            self.web = WebApp(cfg, self.store, self.pipeline, self.metrics, self.sinks, self.workers, self.sources)
        self._stop = threading.Event()
        self._last_purge = 0.0

    def log_configuration(self):
        """A changed configuration file is a configuration change: record it in the access log."""
        if not self.config_path:
            return None
        import hashlib
        with open(self.config_path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        key = "config_sha256"
        if self.cfg["store"].get("url"):      # several instances, each with its own file, share the store
            key += "/" + self.cfg["gateway"]["instance"]
        last = self.store.sink_state("_gateway", key)
        if last != digest:
            self.store.log_access("service", "config.change" if last else "config.first",
                                  {"file": os.path.basename(self.config_path), "sha256": digest, "previous": last,
                                   "instance": self.cfg["gateway"]["instance"]})
            self.store.sink_state("_gateway", key, digest)
        return digest

    def start(self):
        self.log_configuration()
        self.pipeline.start()
        for w in self.workers:
            w.start()
        if self.web:
            self.web.start()
        tune_gc()       # everything is loaded: nothing created so far needs collecting
        for s in self.sources:
            s.start()

    def purge(self):
        result = purge(self.store, self.cfg["retention"])
        if any(result.values()):
            log.info("retention: removed %s", result)
        self._last_purge = time.time()
        return result

    def run(self):
        """Block until SIGTERM/SIGINT; keep systemd's watchdog fed while healthy."""
        self.start()
        self.purge()
        notify("READY=1\nSTATUS=receiving")
        log.info("gateway running: %d source(s), %d sink(s), web %s", len(self.sources), len(self.sinks),
                 "%s:%d" % (self.cfg["http"]["host"], self.web.port) if self.web else "off")
        wd = watchdog_interval()
        tick = min(wd or 1.0, 1.0)
        while not self._stop.wait(tick):
            if wd is not None and self.pipeline.alive() and time.monotonic() - self.pipeline.last_progress < 60:
                notify("WATCHDOG=1")
            if time.time() - self._last_purge > self.cfg["retention"]["purge_every_s"]:
                try:
                    self.purge()
                except Exception:
                    log.exception("retention purge failed")
        self.shutdown()
        return 0

    def request_stop(self, *_):
        self._stop.set()

    def shutdown(self):
        """Graceful: stop taking messages, commit what is queued, stop sinks."""
        if getattr(self, "_shut", False):
            return
        self._shut = True
        notify("STOPPING=1")
        log.info("stopping")
        for s in self.sources:
            s.stop()
        self.pipeline.stop()
        for w in self.workers:
            w.stop()
        if self.web:
            self.web.stop()
        self.store.close()


def purge(store, retention):
    """Raw uplinks after raw_hours; quarantined messages after quarantine_days or past quarantine_max_bytes."""
    now = time.time()
    result = store.purge(now - retention["raw_hours"] * 3600)
    q = store.purge_quarantine(now - retention["quarantine_days"] * 86400, retention["quarantine_max_bytes"])
    result.update({"quarantine_old": q["old"], "quarantine_over_size": q["over_size"]})
    return result


def _setup_logging(level):
    # journald adds timestamps; keep lines short and prefixed with syslog priorities
    class Prio(logging.Formatter):
        P = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}

        def format(self, record):
            text = logging.Formatter.format(self, record)
            if os.environ.get("JOURNAL_STREAM"):
                return "<%d>%s" % (self.P.get(record.levelname, 6), text)
            return "%s %s" % (time.strftime("%H:%M:%S"), text)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Prio("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _parser():
    p = argparse.ArgumentParser(prog="vistelse gateway", description="Run the Vistelse gateway service.")
    p.add_argument("--config", "-c", default=os.environ.get("VISTELSE_GATEWAY_CONFIG", "gateway.toml"),
                   help="configuration file (TOML), default %(default)s")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("run", help="run in the foreground (the default)")
    sub.add_parser("check", help="check the configuration and exit")
    sub.add_parser("verify-log", help="verify the access log's hash chain")
    sub.add_parser("purge", help="apply the retention rules now")
    sub.add_parser("migrate", help="bring the database schema up to this version (PostgreSQL: run once, "
                                   "with one instance's configuration, before starting the upgraded instances)")
    dev = sub.add_parser("device", help="manage the device registry")
    dsub = dev.add_subparsers(dest="action", required=True)
    add = dsub.add_parser("add", help="register or update a device")
    add.add_argument("dev_eui")
    add.add_argument("--key-file", help="file with the 32-byte tag key as 64 hex digits (required for a new device)")
    add.add_argument("--network", choices=("chirpstack", "tts"), required=True)
    add.add_argument("--application", required=True,
                     help="ChirpStack application id, or The Things Stack app@tenant the device must arrive from")
    add.add_argument("--tts-device-id")
    add.add_argument("--name", default="")
    add.add_argument("--site", default="")
    add.add_argument("--meta", default="{}", help="JSON: zones, lines, location, sensor")
    add.add_argument("--register", default="{}", help="JSON: purpose, legal_basis, installed, review_due, ...")
    add.add_argument("--reactivate", action="store_true",
                     help="the device was retired and is to receive data again (otherwise refused)")
    dsub.add_parser("list", help="list devices (never the keys)")
    for name in ("retire", "activate"):
        x = dsub.add_parser(name)
        x.add_argument("dev_eui")
    imp = dsub.add_parser("import", help="register devices from a TOML file ([[device]] tables)")
    imp.add_argument("file")
    return p


def _store_name(store_cfg):
    """The store for messages: a PostgreSQL URL without its password."""
    if store_cfg.get("url"):
        import re
        return re.sub(r"(//[^:/@]*):[^@]*@", r"\1:***@", store_cfg["url"])
    return store_cfg["path"]


def _actor():
    return "cli:%s" % (os.environ.get("SUDO_USER") or os.environ.get("USER") or os.getuid())


def _read_key(path):
    with open(path, encoding="ascii") as f:
        text = f.read().strip()
    key = bytes.fromhex(text)
    if len(key) != 32:
        raise ValueError("the key file must hold 64 hex digits (32 bytes)")
    return key


def _refuse_retired(store, dev_eui, reactivate):
    """Registering a retired device again would silently start taking its data: say so explicitly."""
    existing = store.get_device(str(dev_eui).lower())
    if existing is not None and existing["status"] == "retired" and not reactivate:
        raise ValueError("device %s is retired; to take data from it again, add it with --reactivate "
                         "(in an import file: reactivate = true)" % existing["dev_eui"])


def device_command(store, args, out):
    if args.action == "list":
        for d in store.list_devices():
            out.write("%s  %-8s %-10s %-40s %s\n" % (d["dev_eui"], d["status"], d["network"], d["application"],
                                                    d["site"]))
        return 0
    if args.action in ("retire", "activate"):
        store.set_device_status(args.dev_eui.lower(), "retired" if args.action == "retire" else "active", _actor())
        return 0
    if args.action == "add":
        key = _read_key(args.key_file) if args.key_file else None
        _refuse_retired(store, args.dev_eui, args.reactivate)
        store.put_device({"dev_eui": args.dev_eui.lower(), "network": args.network, "application": args.application,
                          "tts_device_id": args.tts_device_id, "name": args.name, "site": args.site,
                          "meta": json.loads(args.meta), "register": json.loads(args.register)}, key, _actor())
        return 0
    if args.action == "import":
        with open(args.file, "rb") as f:
            doc = tomllib.load(f)
        base = os.path.dirname(os.path.abspath(args.file))
        for d in doc.get("device", []):
            d = dict(d)
            key = None
            if d.get("key_file"):
                key = _read_key(os.path.join(base, d.pop("key_file")))
            elif d.get("key_hex"):
                key = bytes.fromhex(d.pop("key_hex"))
            _refuse_retired(store, d.get("dev_eui", ""), bool(d.pop("reactivate", False)))
            store.put_device(d, key, _actor())
            out.write("registered %s\n" % d["dev_eui"])
        return 0
    return 2


def main(argv=None):
    args = _parser().parse_args(argv)
    cfg = config_mod.load_for("vistelse gateway", args.config)
    if cfg is None:
        return 2
    _setup_logging(cfg["gateway"]["log_level"])
    if not os.path.isdir(cfg["gateway"]["state_dir"]):
        sys.stderr.write("vistelse gateway: state directory %s does not exist\n" % cfg["gateway"]["state_dir"])
        return 2
    command = args.command or "run"
    try:
        if command == "run":
            try:
                gw = Gateway(cfg, args.config)
            except (ValueError, StoreError, OSError) as exc:
                sys.stderr.write("vistelse gateway: cannot start: %s\n" % exc)
                return 2
            signal.signal(signal.SIGTERM, gw.request_stop)
            signal.signal(signal.SIGINT, gw.request_stop)
            # SIGHUP would end the process; reloading in place is not offered (the unit has no ExecReload)
            signal.signal(signal.SIGHUP, lambda *_: log.warning(
                "SIGHUP ignored: to apply a changed configuration, run systemctl restart vistelse-gateway"))
            return gw.run()
        if command == "check":     # touches neither the database nor the network
            build_sinks([s for s in cfg["sinks"] if s["type"] != "mqtt"], None)
            print("configuration OK: %d source(s), %d sink(s), store %s, instance %s" % (
                len(cfg["sources"]), len(cfg["sinks"]), _store_name(cfg["store"]), cfg["gateway"]["instance"]))
            return 0
        store = open_store(cfg["store"], migrate=command == "migrate")
        try:
            if command == "verify-log":
                result = store.verify_access_log()
                print(json.dumps(result, indent=1))
                return 0 if result["ok"] else 1
            if command == "migrate":
                applied = store.migrated + store.migrate()     # both stores migrate on opening here
                current, _ = store.schema_version()
                print(json.dumps({"store": _store_name(cfg["store"]), "schema_version": current,
                                  "applied": applied}))
                if applied:
                    store.log_access(_actor(), "schema.migrate", {"schema_version": current,
                                                                  "applied": [v for v, _ in applied]})
                return 0
            if command == "purge":
                print(json.dumps(purge(store, cfg["retention"])))
                return 0
            if command == "device":
                return device_command(store, args, sys.stdout)
        finally:
            store.close()
    except (StoreError, ValueError, OSError, tomllib.TOMLDecodeError) as exc:
        sys.stderr.write("vistelse gateway: %s\n" % exc)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
