"""Start a private MQTT broker (Debian's mosquitto) on 127.0.0.1.

Used by the demo and the tests: each gets its own broker on a free port,
with its own configuration and persistence directory, stopped on exit.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")


def find_mosquitto():
    """Path of the mosquitto binary, or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for path in MOSQUITTO_PATHS:
        if os.access(path, os.X_OK):
            return path
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Mosquitto:
    """A mosquitto process on 127.0.0.1:port. Use as a context manager.

    persistence=True keeps QoS 1 messages for persistent sessions across a
    broker restart (`restart()`), as a production broker would.
    """

    host = "127.0.0.1"

    def __init__(self, port=None, persistence=True, workdir=None):
        self.binary = find_mosquitto()
        if self.binary is None:
            raise RuntimeError("mosquitto is not installed (Debian package 'mosquitto'; make setup installs it as root)")
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="vistelse-mqtt-")
        self.config = os.path.join(self.workdir, "mosquitto.conf")
        with open(self.config, "w") as f:
            f.write("listener %d 127.0.0.1\n" % self.port)
            f.write("allow_anonymous true\n")
            f.write("max_queued_messages 0\n")  # 0 = no limit: a slow consumer must not lose QoS 1
            if persistence:
                f.write("persistence true\npersistence_location %s/\n" % self.workdir)
                f.write("autosave_interval 1\n")
        self.process = None

    def start(self):
        self.log = open(os.path.join(self.workdir, "mosquitto.log"), "ab")
        self.process = subprocess.Popen([self.binary, "-c", self.config], stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_for_port(self.host, self.port):
            self.stop()
            raise RuntimeError("mosquitto did not start on %s:%d (see %s)" % (self.host, self.port, self.workdir))
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def restart(self):
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
