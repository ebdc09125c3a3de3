"""Real components for tests and benchmarks: a mosquitto broker on 127.0.0.1,
a throwaway PostgreSQL cluster on a Unix socket,
network-server messages built with the real chirpstack-api classes, and
HTTP sink servers that validate what they receive and fail on purpose."""
import base64
import datetime as dt
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import vistelse_codec
from chirpstack_api import integration
from google.protobuf import json_format

KEY = bytes(range(32))
APP_ID = "6f3c1c4e-0d1a-4b6f-9a55-2b8f9a1d0c01"
TENANT_ID = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_path():
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


class Mosquitto:
    """A private broker: random port, temp config, killed on stop()."""

    def __init__(self, port=None, extra="", anonymous=True, persistence_dir=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="vistelse-mosquitto-")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        persistence = ("persistence true\npersistence_location %s/\n" % persistence_dir if persistence_dir
                       else "persistence false\n")
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous %s\n%s"
                    "max_queued_messages 1000000\nmax_inflight_messages 1000\nlog_dest stderr\nlog_type error\n%s%s"
                    % (self.port, "true" if anonymous else "false", persistence,
                       "user root\n" if os.geteuid() == 0 else "", extra))
        self.proc = None

    def start(self):
        exe = mosquitto_path()
        if exe is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen([exe, "-c", self.conf], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("mosquitto exited: %s" % open(self.log.name).read())
                time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError("mosquitto did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    host = "127.0.0.1"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def postgres_bindir():
    """Debian's postgresql package puts the server binaries in /usr/lib/postgresql/<major>/bin."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    exe = shutil.which("postgres")
    return os.path.dirname(exe) if exe else None


class Postgres:
    """A throwaway PostgreSQL cluster: initdb in a temporary directory, the server
    listening only on a Unix socket in that directory (no TCP port to collide on).

    PostgreSQL refuses to run as root ("root" execution of the PostgreSQL server
    is not permitted, src/backend/main/main.c), so as root the cluster is created
    and run as the `postgres` system user of Debian's package (or `user=`); the
    database superuser is then called `postgres` too and trusts local connections.
    `fsync=False` is for tests only; the benchmarks keep the durable default."""

    def __init__(self, fsync=True, user=None, extra=()):
        self.bindir = postgres_bindir()
        self.fsync = fsync
        self.extra = list(extra)
        self.os_user = user or ("postgres" if os.geteuid() == 0 else None)
        self.dir = tempfile.mkdtemp(prefix="vistelse-pg-")
        self.data = os.path.join(self.dir, "data")
        self.proc = None
        self.db_user = self.os_user or pwd.getpwuid(os.geteuid()).pw_name

    def _run_as(self):
        if self.os_user is None:
            return {}
        try:
            entry = pwd.getpwnam(self.os_user)
        except KeyError:
            raise RuntimeError("PostgreSQL cannot run as root and there is no %r user to run it as "
                               "(tools/setup.sh installs Debian's postgresql, which creates it)" % self.os_user)
        os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [],
                "env": dict(os.environ, HOME=self.dir, USER=self.os_user, LC_ALL="C.UTF-8")}

    def start(self):
        if self.bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; tools/setup.sh does it)")
        run_as = self._run_as()
        self.log = open(os.path.join(self.dir, "log"), "wb")
        init = subprocess.run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", self.db_user,
                               "--auth=trust", "--encoding=UTF8", "--no-sync"] +
                              ([] if self.fsync else ["--no-instructions"]),
                              stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir, **run_as)
        if init.returncode:
            raise RuntimeError("initdb failed: %s" % open(self.log.name).read()[-2000:])
        args = [os.path.join(self.bindir, "postgres"), "-D", self.data, "-k", self.dir,
                "-c", "listen_addresses=", "-c", "max_connections=200", "-c", "shared_buffers=128MB"]
        if not self.fsync:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        for setting in self.extra:
            args += ["-c", setting]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir, **run_as)
        sock = os.path.join(self.dir, ".s.PGSQL.5432")
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: %s" % open(self.log.name).read()[-2000:])
            if os.path.exists(sock):
                try:
                    self.execute("SELECT 1")
                    return self
                except Exception:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("postgres did not start: %s" % open(self.log.name).read()[-2000:])

    def url(self, dbname="postgres"):
        """libpq URI with the socket directory as host (percent-encoded)."""
        from urllib.parse import quote
        return "postgresql://%s@%s/%s" % (self.db_user, quote(self.dir, safe=""), dbname)

    def execute(self, sql, dbname="postgres"):
        import psycopg
        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else None

    def create_database(self, name=None):
        """A fresh, empty database -> its URL."""
        name = name or "t_%s" % os.urandom(6).hex()
        self.execute('CREATE DATABASE "%s"' % name)
        return self.url(name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # SIGINT is PostgreSQL's "fast" shutdown (SIGTERM, "smart", would wait for clients)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# -- messages ----------------------------------------------------------------
def report(seq, visits=5, lines=1, total_in=100, total_out=90, age_s=2, health=(), config_version=0,
           intervals=1, interval_s=300, heights=False, battery_mv=3300, reset_cause=None):
    ivs = []
    for i in range(intervals):
        iv = {"zones": [{"visits": visits + i, "person_s": 600 + 10 * i, "max_occupancy": 3,
                         "dwell_hist": {"edges_s": list(vistelse_codec.DWELL_EDGES_S),
                                        "counts": [1, 1, 1, 1, 1, 0, 0]}}],
              "lines": [{"in": 2, "out": 1, "total_in": (total_in - 2 * (intervals - 1 - i)) & 0xFFFF,
                         "total_out": (total_out - (intervals - 1 - i)) & 0xFFFF} for _ in range(lines)]}
        if heights:
            iv["height_classes"] = {"edges_mm": [0, 1400], "counts": [1, 4]}
        ivs.append(iv)
    return {"seq": seq & 0xFFFF, "interval_s": interval_s, "age_s": age_s,
            "status": {"battery_mv": battery_mv, "health": list(health), "config_version": config_version,
                       "reset_cause": reset_cause},
            "intervals": ivs}


def frame(rep, eui, key=KEY):
    return vistelse_codec.encode_uplink(rep, dev_eui=eui, key=key)


def chirpstack_uplink(eui, data, f_cnt, app=APP_ID, f_port=1, when=None, dedup=None):
    ev = integration.UplinkEvent(deduplication_id=dedup or "%s-%d" % (eui.hex(), f_cnt),
                                 dev_addr="01020304", dr=5, f_cnt=f_cnt, f_port=f_port, data=data)
    if when is None:
        ev.time.GetCurrentTime()
    else:
        ev.time.FromSeconds(int(when))
    ev.device_info.tenant_id = TENANT_ID
    ev.device_info.tenant_name = "City"
    ev.device_info.application_id = app
    ev.device_info.application_name = "vistelse"
    ev.device_info.dev_eui = eui.hex()
    ev.device_info.device_name = "node-" + eui.hex()[-4:]
    rx = ev.rx_info.add()
    rx.gateway_id = "0016c001ff10a235"
    rx.rssi = -87
    rx.snr = 6.5
    ev.tx_info.frequency = 868100000
    ev.tx_info.modulation.lora.bandwidth = 125000
    ev.tx_info.modulation.lora.spreading_factor = 9
    return ev


def cs_json(msg):
    return json_format.MessageToJson(msg).encode()


def cs_topic(eui, event="up", app=APP_ID):
    return "application/%s/device/%s/event/%s" % (app, eui.hex(), event)


def tts_uplink(eui, data, f_cnt, app="vistelse", tenant="city", device_id=None, when=None):
    device_id = device_id or "node-" + eui.hex()[-4:]
    received = dt.datetime.fromtimestamp(when or time.time(), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    up = {"f_port": 1, "frm_payload": base64.b64encode(data).decode(),
          "rx_metadata": [{"gateway_ids": {"gateway_id": "gw1"}, "rssi": -90, "channel_rssi": -90, "snr": 5.25}],
          "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 9}}, "frequency": "868100000"},
          "received_at": received}
    if f_cnt:
        up["f_cnt"] = f_cnt
    doc = {"end_device_ids": {"device_id": device_id, "application_ids": {"application_id": app},
                              "dev_eui": eui.hex().upper()},
           "correlation_ids": ["as:up:01HX%08d" % f_cnt], "received_at": received, "uplink_message": up}
    topic = "v3/%s@%s/devices/%s/up" % (app, tenant, device_id)
    return topic, json.dumps(doc).encode()


# -- sink servers ------------------------------------------------------------------
def _is_iso(text):
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except (ValueError, AttributeError):
        return False


def validate_crowdflow(e):
    """The CrowdFlowObserved schema's required fields and types (NGSI-LD normalised)."""
    errors = []
    if not isinstance(e, dict):
        return ["entity is not an object"]
    for req in ("id", "type", "dateObserved"):
        if req not in e:
            errors.append("missing " + req)
    if not str(e.get("id", "")).startswith("urn:ngsi-ld:"):
        errors.append("id is not an NGSI-LD URN")
    if e.get("type") != "CrowdFlowObserved":
        errors.append("type is not CrowdFlowObserved")

    def val(name):
        p = e.get(name)
        if p is None:
            return None
        if not isinstance(p, dict) or p.get("type") != "Property" or "value" not in p:
            errors.append("%s is not a Property" % name)
            return None
        return p["value"]
    d = val("dateObserved")
    if d is not None:
        parts = d.split("/") if isinstance(d, str) else []
        if not parts or len(parts) > 2 or not all(_is_iso(x) for x in parts):
            errors.append("dateObserved is not ISO 8601")
    for name in ("dateObservedFrom", "dateObservedTo"):
        v = val(name)
        if v is not None:
            text = v.get("@value") if isinstance(v, dict) else v
            if not _is_iso(text):
                errors.append("%s is not a date-time" % name)
    pc = val("peopleCount")
    if pc is not None and (type(pc) is not int or pc < 0):
        errors.append("peopleCount must be an integer >= 0")
    occ = val("occupancy")
    if occ is not None and (type(occ) not in (int, float) or not 0 <= occ <= 1):
        errors.append("occupancy must be a number in 0..1")
    di = val("direction")
    if di is not None and di not in ("inbound", "outbound"):
        errors.append("direction must be inbound or outbound")
    if "@context" not in e:
        errors.append("no @context")
    return errors


class SinkServer:
    """Test HTTP server: NGSI-LD broker, SensorThings server or webhook receiver.

    Failure modes: fail_next(n, status), slow_next(n, seconds) (client
    timeouts), down() / up() (nothing listening for a while)."""

    def __init__(self, kind):
        self.kind = kind
        self.port = free_port()
        self.lock = threading.Lock()
        self.store = {}          # id -> document (what the platform holds)
        self.received = 0        # documents received, redeliveries included
        self.arrivals = []       # webhook item ids in the order they arrived, redeliveries included
        self.requests = 0
        self.invalid = []
        self._fail = []
        self._slow = []
        self.things = {}
        self.streams = {}
        self.server = None
        self.up()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def fail_next(self, n, status=500):
        with self.lock:
            self._fail += [status] * n

    def slow_next(self, n, seconds):
        with self.lock:
            self._slow += [seconds] * n

    def up(self):
        owner = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner.lock:
                    owner.requests += 1
                    fail = owner._fail.pop(0) if owner._fail else None
                    slow = owner._slow.pop(0) if owner._slow else None
                if slow:
                    time.sleep(slow)
                if fail:
                    self.send_response(fail)
                    self.end_headers()
                    return
                code, headers, out = owner.handle(self.path, self.headers, body)
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        self.server.shutdown()
        self.server.server_close()

    def handle(self, path, headers, body):
        try:
            doc = json.loads(body)
        except ValueError:
            return 400, {}, b"not JSON"
        with self.lock:
            if self.kind == "ngsi-ld":
                if path != "/ngsi-ld/v1/entityOperations/upsert" or "ld+json" not in headers.get("Content-Type", ""):
                    return 404, {}, b"wrong path or content type"
                if not isinstance(doc, list):
                    return 400, {}, b"batch must be an array"
                for e in doc:
                    errs = validate_crowdflow(e)
                    if errs:
                        self.invalid.append((e.get("id") if isinstance(e, dict) else None, errs))
                        return 400, {}, json.dumps(errs).encode()
                for e in doc:
                    self.received += 1
                    self.store[e["id"]] = e
                return 201, {}, b""
            if self.kind == "webhook":
                for item in doc["items"]:
                    self.received += 1
                    self.store[item["id"]] = item
                    self.arrivals.append(item["id"])
                return 200, {}, b"{}"
            # SensorThings
            if path == "/v1.1/Things":
                tid = len(self.things) + 1
                self.things[tid] = doc
                return 201, {"Location": "%s/v1.1/Things(%d)" % (self.url, tid)}, b""
            if path == "/v1.1/Datastreams":
                if not doc.get("Thing", {}).get("@iot.id") in self.things or "unitOfMeasurement" not in doc:
                    return 400, {}, b"bad datastream"
                sid = len(self.streams) + 1
                self.streams[sid] = doc
                return 201, {"Location": "%s/v1.1/Datastreams(%d)" % (self.url, sid)}, b""
            if path == "/v1.1/Observations":
                if doc.get("Datastream", {}).get("@iot.id") not in self.streams or "result" not in doc \
                        or "/" not in doc.get("phenomenonTime", ""):
                    self.invalid.append(doc)
                    return 400, {}, b"bad observation"
                self.received += 1
                oid = doc.get("@iot.id")
                if oid in self.store:
                    return 409, {}, b"exists"
                self.store[oid] = doc
                return 201, {"Location": "%s/v1.1/Observations('%s')" % (self.url, oid)}, b""
            return 404, {}, b""
