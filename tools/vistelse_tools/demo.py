"""`vistelse demo`: the whole chain on this machine, with virtual nodes.

    vistelse demo                      # 10 simulated minutes... per node kind, at 60x
    vistelse demo --minutes 240 --speed 600 --nodes 3

On 127.0.0.1 it starts:

- an MQTT broker (Debian's mosquitto; `make setup` installs it as root);
- a stand-in for ChirpStack v4's MQTT integration (netserver.py), which
  publishes each uplink as a real-schema ChirpStack event;
- the Vistelse gateway, ingesting from the broker, storing in SQLite,
  forwarding to a local webhook sink that writes JSON lines to a file, and
  serving its pages (status, data, public sensor register);
- virtual nodes: the node firmware (pipeline, queue, scheduler, modem
  driver) running under CPython with a simulated clock, fed by the scene
  simulator — radar nodes over a square, ToF nodes over a passage — each
  talking AT commands to its modem emulator, whose uplinks go to the
  ChirpStack stand-in.

Simulated time runs `--speed` times faster than real time and ends now, so
the data view shows recent hours and weekdays. Ctrl-C stops everything.
"""
import argparse
import datetime
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import REPO_ROOT

APPLICATION_ID = "8d2b4f7e-1c3a-4e5b-9f60-7a1b2c3d4e5f"
TENANT_ID = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"


class SimClock:
    """Simulated time: starts at `start` (epoch s), runs `speed` times real time."""

    def __init__(self, start, speed, end=None):
        self.start = start
        self.speed = speed
        self.end = end if end is not None else float("inf")
        self._t0 = time.monotonic()

    def now(self):
        return self.start + (time.monotonic() - self._t0) * self.speed


class WebhookSink:
    """The city platform, as far as the demo needs one: a webhook that keeps
    every delivery as a JSON line in a file."""

    def __init__(self, path):
        self.path = path
        self.count = 0
        self.ids = set()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    doc = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                items = doc.get("items", []) if isinstance(doc, dict) else []
                with open(sink.path, "a") as f:
                    for item in items:
                        f.write(json.dumps(item) + "\n")
                # the gateway's webhook carries stable ids: redeliveries are dropped
                sink.ids.update(item.get("id") for item in items)
                sink.count = len(sink.ids)
                self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/vistelse" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SceneSensor:
    """A virtual node's sensor: the scene simulator's frames at simulated
    time, ten-minute scenes one after another (a square watched by radar,
    or a passage under the ToF sensor)."""

    CHUNK_MIN = 10
    # How busy a public place is by hour of day (share of the busiest hour):
    # quiet nights, a morning rush, lunch and the late afternoon.
    DAY_PROFILE = (0.05, 0.03, 0.02, 0.02, 0.03, 0.08, 0.25, 0.6, 0.8, 0.55, 0.5, 0.7,
                   1.0, 0.9, 0.6, 0.6, 0.8, 0.95, 0.8, 0.6, 0.45, 0.3, 0.2, 0.1)

    def __init__(self, kind, clock, seed, start_epoch=None):
        self.kind = kind
        self.clock = clock
        self.seed = seed
        self.start_epoch = start_epoch
        self.t0 = clock.ticks_ms()
        self._frames = self._stream()
        self._next = next(self._frames)

    def _stream(self):
        from . import simulate
        k = 0
        while True:
            site = simulate.square_site if self.kind == "radar" else simulate.passage_site
            busiest_gap_s = 12.0 if self.kind == "radar" else 8.0
            share = 1.0
            if self.start_epoch is not None:
                from zoneinfo import ZoneInfo
                hour = datetime.datetime.fromtimestamp(self.start_epoch + k * self.CHUNK_MIN * 60,
                                                       ZoneInfo("Europe/Stockholm")).hour
                share = self.DAY_PROFILE[hour]
            scene, header = site(self.CHUNK_MIN, seed=self.seed * 100003 + k, mean_gap_s=busiest_gap_s / share)
            frames = (simulate.ld2450_frames if self.kind == "radar" else simulate.vl53l5cx_frames)(
                scene, header, self.seed * 100003 + k)
            offset = k * self.CHUNK_MIN * 60000
            for f in frames:
                yield offset + f["t_ms"], f
            k += 1

    def read_frame(self):
        from vistelse_node.clock import ticks_diff
        t, f = self._next
        if ticks_diff(self.clock.ticks_ms(), self.t0) < t:
            return None
        self._next = next(self._frames)
        return bytes.fromhex(f["raw"]) if self.kind == "radar" else (f["mm"], f["status"])

    def reinit(self):
        pass


def site_of(kind):
    """Zones, lines and mount of the demo's two sites (as the simulator builds them)."""
    from . import simulate
    _, header = (simulate.square_site if kind == "radar" else simulate.passage_site)(1)
    return header


class DemoNode:
    """One virtual node (virtual_node.VirtualNode: the firmware on simulated
    time) in a thread that keeps its clock in step with the demo's, and
    hands its uplinks to the ChirpStack stand-in."""

    def __init__(self, kind, name, ids, clock, netserver, interval_s, folder, seed, loss=0.0):
        from .provision import node_config
        from .virtual_node import VirtualNode
        self.kind, self.name, self.ids, self.clock, self.netserver = kind, name, ids, clock, netserver
        self.dev_eui = ids["dev_eui"]
        self.site = "Torget" if kind == "radar" else "Passagen"
        header = site_of(kind)
        self.header = header
        doc = node_config(ids, "esp32_devkitc", header["sensor"], [z["polygon_mm"] for z in header["zones"]],
                          [[l["a_mm"], l["b_mm"]] for l in header["lines"]], interval_s)
        doc["mount"] = header["mount"]
        self.start_epoch = clock.start
        self.uplinks = 0
        self.vn = VirtualNode(doc, None, folder=folder, on_uplink=self._uplink,
                              downlinks=self._downlink, sensor=lambda c: SceneSensor(kind, c, seed, clock.start),
                              session_kw={"on_join": self._joined, "seed": seed, "loss_rate": loss})
        self._stop = threading.Event()
        self._thread = None

    def _when(self):
        return datetime.datetime.fromtimestamp(self.start_epoch + self.vn.clock.elapsed_ms / 1000.0,
                                               datetime.timezone.utc)

    def _uplink(self, up):
        self.netserver.publish_uplink(self.dev_eui, up["fport"], up["data"], up["fcnt"], dr=up["dr"],
                                      when=self._when())
        self.uplinks += 1

    def _downlink(self, dev_eui):
        return self.netserver.next_downlink(dev_eui)

    def _joined(self, dev_eui):
        self.netserver.publish_join(self.dev_eui, when=self._when())

    def registry_entry(self, application_id):
        return {"dev_eui": self.dev_eui, "network": "chirpstack", "application": application_id,
                "name": self.name, "site": self.site,
                "meta": {"sensor": self.header["sensor"], "board": "esp32_devkitc",
                         "zones": [z["polygon_mm"] for z in self.header["zones"]],
                         "lines": [[l["a_mm"], l["b_mm"]] for l in self.header["lines"]],
                         "location": "demo"},
                "register": {"measures": "visits, person-seconds, occupancy, dwell-time distribution, line crossings"
                             + (", child/adult share" if self.kind == "tof" else ""),
                             "purpose": "demonstration", "legal_basis": "none needed: no personal data",
                             "retention": "demo", "owner": "Demo municipality", "contact": "sensors@example.se",
                             "installed": datetime.date.today().isoformat(),
                             "review_due": datetime.date.today().replace(year=datetime.date.today().year + 1).isoformat(),
                             "sensor": self.header["sensor"], "personal_data": "none leaves the sensor"}}

    def _run(self):
        step = 100 if self.kind == "radar" else 50      # at most the sensor's frame period
        while not self._stop.is_set():
            target = (min(self.clock.now(), self.clock.end) - self.start_epoch) * 1000
            n = 0
            while self.vn.clock.elapsed_ms < target and not self._stop.is_set():
                self.vn.step(step)
                n += 1
                if n % 2000 == 0:
                    time.sleep(0)                          # let the other threads in
            self._stop.wait(0.05)

    def behind(self):
        """True while the node's simulated time lags the demo's by more than a step."""
        target = (min(self.clock.now(), self.clock.end) - self.start_epoch) * 1000
        return self.vn.clock.elapsed_ms + 100 < target

    def start(self):
        self._thread = threading.Thread(target=self._run, name="node-" + self.name, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def gateway_config(workdir, broker_port, sink_url, http_port, token, mqtt_protocol="5"):
    with open(os.path.join(workdir, "operator.token"), "w") as f:
        f.write(token)
    os.chmod(os.path.join(workdir, "operator.token"), 0o600)
    path = os.path.join(workdir, "gateway.toml")
    with open(path, "w") as f:
        f.write('''# Written by `vistelse demo`.
[gateway]
state_dir = "state"
log_level = "warning"

[[source]]
type = "chirpstack-mqtt"
host = "127.0.0.1"
port = %d
client_id = "vistelse-demo-gateway"
protocol = "%s"

[http]
listen = "127.0.0.1:%d"

[[auth.operator]]
name = "demo"
token_file = "operator.token"

[register]
title = "Sensor register - Vistelse demo"
owner = "Demo municipality, city planning office"
contact = "sensors@example.se"

[[sink]]
type = "webhook"
url = "%s"

# receipts: the nodes send again what the (simulated) radio lost
[receipts]
enabled = true

[downlink]
via = "chirpstack-mqtt"
''' % (broker_port, mqtt_protocol, http_port, sink_url))
    os.makedirs(os.path.join(workdir, "state"), exist_ok=True)
    return path


def end_time(text):
    """--end: an ISO 8601 time with its offset, not in the future (the status page
    judges a node's data against the gateway's clock)."""
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not an ISO 8601 time: %r" % text)
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError("give the offset too, e.g. %s+01:00 or %sZ" % (text, text))
    epoch = when.timestamp()
    if epoch > time.time():
        raise argparse.ArgumentTypeError("%s lies in the future" % text)
    return epoch


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse demo", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=120, help="simulated minutes (default 120)")
    p.add_argument("--speed", type=float, default=120, help="simulated time per real time (default 120)")
    p.add_argument("--nodes", type=int, default=2, help="virtual nodes, alternately radar and ToF (default 2)")
    p.add_argument("--interval", type=int, default=300, help="the nodes' reporting interval in seconds")
    p.add_argument("--loss", type=float, default=0.05,
                   help="share of uplinks the simulated radio loses (default 0.05); receipts recover them")
    p.add_argument("--screenshot", metavar="PNG",
                   help="at the end, save the dashboard as seen by headless Chromium (if installed)")
    p.add_argument("--end", type=end_time, metavar="ISO8601",
                   help="when the simulated run ends, e.g. 2026-06-03T12:30+02:00 (default now). "
                        "The simulated places are busy by the hour of the day: 12-13 and 17-18 are "
                        "the busiest, nights so quiet that a node holds its intervals until k people")
    p.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto",
                   help="MQTT broker: mosquitto if installed, else amqtt in this process (default auto)")
    p.add_argument("--port", type=int, default=8080, help="the gateway's web port (default 8080; 0 = any free)")
    p.add_argument("--workdir", default=os.path.join(REPO_ROOT, "var", "demo"),
                   help="where the demo keeps its state (default var/demo, cleared at start)")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.speed <= 0 or not 1 <= args.nodes <= 20:
        p.error("--minutes and --speed must be positive, --nodes 1 to 20")
    demo = Demo(args)
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *a: stopping.set())
    signal.signal(signal.SIGTERM, lambda *a: stopping.set())
    try:
        demo.start()
        demo.run(stopping)
    finally:
        demo.stop()
    return 0


class Demo:
    def __init__(self, args):
        self.args = args
        self.workdir = os.path.abspath(args.workdir)
        self.parts = []          # things to stop, last started first

    def say(self, text):
        print(text, flush=True)

    def start(self):
        from vistelse_gateway import config as config_mod
        from vistelse_gateway.service import Gateway
        from .broker import start_broker
        from .netserver import NetworkServer
        from .provision import new_secrets

        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(self.workdir)
        self.broker = start_broker(self.args.broker)
        self.parts.append(self.broker.stop)
        self.say("MQTT broker    %s on 127.0.0.1:%d" % (self.broker.name, self.broker.port))
        self.sink = WebhookSink(os.path.join(self.workdir, "platform.jsonl"))
        self.parts.append(self.sink.stop)
        self.token = secrets.token_urlsafe(18)
        http_port = self.args.port
        if http_port == 0:
            from vistelse_gateway.testing import free_port
            http_port = free_port()
        # amqtt speaks MQTT 3.1.1 only; mosquitto both
        cfg_path = gateway_config(self.workdir, self.broker.port, self.sink.url, http_port, self.token,
                                  "5" if self.broker.name == "mosquitto" else "3.1.1")
        self.gateway = Gateway(config_mod.load(cfg_path), cfg_path)
        self.netserver = NetworkServer("127.0.0.1", self.broker.port, APPLICATION_ID, TENANT_ID)
        self.parts.append(self.netserver.close)

        end = self.args.end if getattr(self.args, "end", None) is not None else time.time()
        duration_s = self.args.minutes * 60
        self.clock = SimClock(end - duration_s, self.args.speed, end)
        self.end_sim = end
        self.nodes = []
        for i in range(self.args.nodes):
            kind = "radar" if i % 2 == 0 else "tof"
            ids = new_secrets()
            name = "%s-%d" % ("torget" if kind == "radar" else "passagen", i // 2 + 1)
            node = DemoNode(kind, name, ids, self.clock, self.netserver, self.args.interval,
                            os.path.join(self.workdir, "nodes", name), seed=i + 1, loss=self.args.loss)
            self.gateway.store.put_device(node.registry_entry(APPLICATION_ID), bytes.fromhex(ids["tag_key"]),
                                          "demo")
            self.netserver.add_device(ids["dev_eui"], name, tags={"site": node.site})
            self.nodes.append(node)
        self.gateway.start()
        self.parts.append(self.gateway.shutdown)
        for node in self.nodes:
            node.start()
            self.parts.append(node.stop)
        base = "http://127.0.0.1:%d" % self.gateway.web.port
        auth = "http://demo:%s@127.0.0.1:%d" % (self.token, self.gateway.web.port)
        self.say("gateway        %s (state in %s)" % (base, os.path.relpath(self.workdir)))
        self.say("virtual nodes  %s" % ", ".join("%s (%s, %s)" % (n.name, n.kind, n.dev_eui) for n in self.nodes))
        self.say("simulating     %.0f minutes at %gx: %.0f s of real time" % (
            self.args.minutes, self.args.speed, self.args.minutes * 60 / self.args.speed))
        self.say("")
        self.say("  dashboard        %s/data" % auth)
        self.say("  status           %s/status" % auth)
        self.say("  sensor register  %s/register   (public, no login)" % base)
        self.say("  platform sink    %s" % os.path.relpath(self.sink.path))
        self.say("")

    def stored(self):
        """(intervals stored, uplinks rejected) in the gateway."""
        store = self.gateway.store
        return len(store.reports()), sum(store.quarantine_counts().values())

    def forwardable(self):
        """Stored intervals the sink can have by now: a device's later ones wait while
        a lost one has not come back yet (docs/gateway.md, "Receipts")."""
        from vistelse_gateway.receipts import hold_back_s
        from vistelse_gateway.store.order import forwardable
        return len(forwardable(self.gateway.store.reports(), time.time(), hold_back_s(self.gateway.cfg)))

    def progress(self):
        behind = min(n.start_epoch + n.vn.clock.elapsed_ms / 1000.0 for n in self.nodes)
        sim = datetime.datetime.fromtimestamp(min(self.clock.now(), self.end_sim, behind)).strftime("%a %H:%M")
        sent = sum(n.uplinks for n in self.nodes)
        stored, rejected = self.stored()
        recovered = int(self.gateway.metrics.total("vistelse_gateway_intervals_recovered_total"))
        return "%s  uplinks sent %d  intervals stored %d  recovered %d  forwarded %d  rejected %d" % (
            sim, sent, stored, recovered, self.sink.count, rejected)

    def run(self, stopping):
        last = 0
        # until the simulated end, and until every node has caught up with it
        # (a fast --speed can outrun the nodes; nothing is cut short)
        while not stopping.is_set() and (self.clock.now() < self.end_sim or any(n.behind() for n in self.nodes)):
            if time.monotonic() - last > 2:
                self.say(self.progress())
                last = time.monotonic()
            stopping.wait(0.2)
        for node in self.nodes:
            node.stop()
        # let the last uplinks reach the store and the sink
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not stopping.is_set():
            stored, _ = self.stored()
            if stored and self.sink.count >= self.forwardable():
                break
            time.sleep(0.2)
        self.say(self.progress())
        if getattr(self.args, "screenshot", None) and not stopping.is_set():
            self.screenshot(self.args.screenshot)
        self.say("done%s" % (" (stopped)" if stopping.is_set() else ""))

    def screenshot(self, path):
        import subprocess
        exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if exe is None:
            self.say("no Chromium here: no screenshot (apt-get install chromium)")
            return
        url = "http://demo:%s@127.0.0.1:%d/data" % (self.token, self.gateway.web.port)
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--user-data-dir=" + profile, "--window-size=1280,2000",
                            "--screenshot=" + os.path.abspath(path), url],
                           capture_output=True, timeout=120)
        self.say("dashboard saved as %s" % path if os.path.exists(path) else "the screenshot failed")

    def stop(self):
        while self.parts:
            try:
                self.parts.pop()()
            except Exception as exc:   # keep stopping the rest
                self.say("while stopping: %s" % exc)


if __name__ == "__main__":
    sys.exit(main())
