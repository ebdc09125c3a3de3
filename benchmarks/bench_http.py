"""The gateway's HTTP surface under a long, bounded load: open files, threads and
memory must stay flat.

The gateway runs as its own process (as under systemd) on 127.0.0.1 with a few
registered devices and a day of reports. For --duration seconds this sends, at
--rate requests per second in total, health checks, Prometheus scrapes and page
views (status, data, register, API), and every --churn seconds opens --slow
connections that send half a request head and stop, and --half-open
connections that send nothing (both left for the server to drop), plus one
request whose body never arrives. It samples the gateway process:
open file descriptors, threads, resident memory, just before each wave (the
previous wave's connections are then still open on the client's side, older
than the server's header timeout). Loopback only; every loop is bounded in
time and count.

    .venv/bin/python benchmarks/bench_http.py [--duration 600] [--rate 20]

Prints a table of samples and one JSON line with the summary.
"""
import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from vistelse_gateway.testing import APP_ID, KEY, chirpstack_uplink, cs_json, free_port, frame, report

TOKEN = "operator-token-0123456789"
INGEST = "ingest-token-0123456789ab"
DEVICES = [bytes.fromhex("70b3d57ed00001%02x" % i) for i in range(4)]
PAGES = [("/healthz", None), ("/healthz", None), ("/metrics", TOKEN), ("/status", TOKEN), ("/api/status", TOKEN),
         ("/data?days=7", TOKEN), ("/register", None), ("/register.json", None)]


def proc_sample(pid):
    fds = len(os.listdir("/proc/%d/fd" % pid))
    status = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    return {"fds": fds, "threads": int(status["Threads"]), "rss_kib": int(status["VmRSS"].split()[0])}


def start_gateway(workdir, port):
    with open(os.path.join(workdir, "gateway.toml"), "w") as f:
        f.write("""[gateway]
state_dir = "state"
log_level = "warning"
[http]
listen = "127.0.0.1:%d"
header_timeout_s = 10
[[auth.operator]]
name = "ops"
token = "%s"
[[auth.ingest]]
name = "ns"
token = "%s"
""" % (port, TOKEN, INGEST))
    os.makedirs(os.path.join(workdir, "state"))
    devices = ""
    for i, eui in enumerate(DEVICES):
        devices += ('[[device]]\ndev_eui = "%s"\nnetwork = "chirpstack"\napplication = "%s"\nsite = "Site %d"\n'
                    'key_hex = "%s"\n[device.meta]\nzones = [{name = "zone"}]\nlines = [{name = "gate"}]\n'
                    'location = {lat = 59.33, lon = 18.06}\n' % (eui.hex(), APP_ID, i, KEY.hex()))
    with open(os.path.join(workdir, "devices.toml"), "w") as f:
        f.write(devices)
    cmd = [sys.executable, "-m", "vistelse_gateway.service", "--config", os.path.join(workdir, "gateway.toml")]
    subprocess.run(cmd + ["device", "import", os.path.join(workdir, "devices.toml")], check=True,
                   capture_output=True)
    log = open(os.path.join(workdir, "gateway.log"), "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gateway did not start")


def request(port, path, token=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": "Bearer " + token} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def feed(port, n_per_device=288):
    now = time.time()
    for k in range(n_per_device):
        for eui in DEVICES:
            msg = chirpstack_uplink(eui, frame(report(k, visits=k % 9, heights=True), eui), k + 1,
                                    when=now - (n_per_device - k) * 300)
            assert request(port, "/ingest/chirpstack?event=up", INGEST, cs_json(msg)) == 200


def open_slow(port, n, half=False):
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if not half:
                s.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic ")
            socks.append(s)
        except OSError:
            pass
    return socks


def slow_body(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /ingest/chirpstack?event=up HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + INGEST.encode()
              + b"\r\nContent-Length: 5000\r\n\r\n{")
    return [s]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--rate", type=float, default=20, help="requests per second, all paths together")
    p.add_argument("--churn", type=float, default=15, help="seconds between waves of slow connections")
    p.add_argument("--slow", type=int, default=60, help="slow (half a request head) connections per wave")
    p.add_argument("--half-open", type=int, default=40, help="silent connections per wave")
    args = p.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="vistelse-bench-http-")
    port = free_port()
    proc = start_gateway(workdir, port)
    samples, latencies, errors, codes = [], [], 0, {}
    held = []
    try:
        feed(port)
        t0 = time.time()
        next_churn = t0
        k = 0
        period = 1.0 / args.rate
        while time.time() - t0 < args.duration:
            now = time.time()
            if now >= next_churn:
                # sample just before each wave: the previous wave's connections are still open on our
                # side, older than header_timeout_s, so the server must have dropped them
                s = proc_sample(proc.pid)
                s["t"] = round(now - t0)
                s["held_by_client"] = len(held)
                samples.append(s)
                for sock in held:
                    sock.close()
                held = open_slow(port, args.slow) + open_slow(port, args.half_open, half=True) + slow_body(port)
                next_churn += args.churn
            path, token = PAGES[k % len(PAGES)]
            k += 1
            start = time.perf_counter()
            try:
                code = request(port, path, token)
                codes[code] = codes.get(code, 0) + 1
            except OSError:
                errors += 1
            latencies.append(time.perf_counter() - start)
            delay = t0 + k * period - time.time()
            if delay > 0:
                time.sleep(delay)
        for sock in held:
            sock.close()
        time.sleep(1)
        samples.append(dict(proc_sample(proc.pid), t=round(time.time() - t0), held_by_client=0))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)

    print("%6s %6s %8s %10s %8s" % ("t (s)", "fds", "threads", "RSS (MiB)", "held"))
    for s in samples:
        print("%6d %6d %8d %10.1f %8d" % (s["t"], s["fds"], s["threads"], s["rss_kib"] / 1024, s["held_by_client"]))
    first = samples[1:7] or samples
    last = samples[-7:-1] or samples
    lat = sorted(latencies)
    summary = {
        "duration_s": args.duration, "requests": len(latencies), "rate_per_s": round(len(latencies) / args.duration, 1),
        "status_codes": codes, "connection_errors": errors,
        "latency_ms_p50": round(1000 * statistics.median(lat), 1),
        "latency_ms_p99": round(1000 * lat[int(0.99 * (len(lat) - 1))], 1),
        "slow_and_half_open_per_wave": args.slow + args.half_open + 1, "wave_every_s": args.churn,
        "fds_first_minute_max": max(s["fds"] for s in first), "fds_last_minute_max": max(s["fds"] for s in last),
        "fds_after": samples[-1]["fds"],
        "threads_min": min(s["threads"] for s in samples), "threads_max": max(s["threads"] for s in samples),
        "rss_mib_first_minute": round(max(s["rss_kib"] for s in first) / 1024, 1),
        "rss_mib_last_minute": round(max(s["rss_kib"] for s in last) / 1024, 1),
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
