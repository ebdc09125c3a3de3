"""MQTT source against real mosquitto: TLS + username/password, reconnect with
backoff after a broker restart, persistent session across a gateway restart."""
import datetime as dt
import os
import shutil
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from vistelse_gateway import config as config_mod
from vistelse_gateway.service import Gateway
from vistelse_gateway.testing import (APP_ID, KEY, Mosquitto, chirpstack_uplink, cs_json, cs_topic, frame,
                                      mosquitto_path, report)

EUI = bytes.fromhex("70b3d57ed0000031")


RUNNING = []


@pytest.fixture(autouse=True)
def need_mosquitto():
    if mosquitto_path() is None:
        if os.geteuid() == 0:
            pytest.fail("mosquitto is not installed: run tools/setup.sh")
        pytest.skip("mosquitto is not installed and this is not root")
    yield
    while RUNNING:             # whatever a test left running, even when it failed half-way
        thing = RUNNING.pop()
        try:
            thing.stop() if isinstance(thing, Mosquitto) else thing.shutdown()
        except Exception:
            pass


def started(broker):
    RUNNING.insert(0, broker)
    return broker.start()


def make_certs(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vistelse test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (d / "ca.pem").write_bytes(ca.public_bytes(pem))
    (d / "server.pem").write_bytes(cert.public_bytes(pem))
    (d / "server.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    for f in ("ca.pem", "server.pem", "server.key"):
        os.chmod(d / f, 0o644)


def gateway(tmp_path, port, **source):
    src = {"type": "chirpstack-mqtt", "host": "127.0.0.1", "port": port, "client_id": "gw-mqtt-test",
           "reconnect_min_s": 0.1, "reconnect_max_s": 0.5}
    src.update(source)
    cfg = config_mod.check({"gateway": {"state_dir": str(tmp_path)}, "http": {"enabled": False},
                            "source": [src]})
    g = Gateway(cfg)
    RUNNING.append(g)
    if g.store.get_device(EUI.hex()) is None:
        g.store.put_device({"dev_eui": EUI.hex(), "network": "chirpstack", "application": APP_ID}, KEY)
    g.start()
    return g


def subscribed(g, timeout=10):
    assert g.sources[0].subscribed.wait(timeout), "the gateway did not subscribe"


def publish(port, seqs, **auth):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub-%d" % time.monotonic_ns())
    if auth.get("username"):
        c.username_pw_set(auth["username"], auth["password"])
    if auth.get("ca"):
        c.tls_set(ca_certs=auth["ca"])
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(cs_topic(EUI), cs_json(chirpstack_uplink(EUI, frame(report(s), EUI), s + 1)), qos=1)
             for s in seqs]
    for i in infos:
        i.wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def wait_reports(g, n, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if g.store.count("reports") >= n:
            return
        time.sleep(0.05)
    raise AssertionError("expected %d reports, have %d" % (n, g.store.count("reports")))


def test_tls_and_password(tmp_path):
    make_certs(tmp_path)
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", str(pw), "gateway",
                    "s3cret-pass"], check=True)
    os.chmod(pw, 0o644)
    broker = started(Mosquitto(extra="cafile %s\ncertfile %s\nkeyfile %s\npassword_file %s\n" % (
        tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key", pw), anonymous=False))
    (tmp_path / "mqtt.pass").write_text("s3cret-pass\n")
    g = gateway(tmp_path, broker.port, username="gateway", password_file=str(tmp_path / "mqtt.pass"),
                tls={"ca_file": str(tmp_path / "ca.pem")})
    try:
        subscribed(g)
        publish(broker.port, [1, 2, 3], username="gateway", password="s3cret-pass", ca=str(tmp_path / "ca.pem"))
        wait_reports(g, 3)
    finally:
        g.shutdown()
        broker.stop()


def test_wrong_password_never_connects(tmp_path):
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", str(pw), "gateway",
                    "right"], check=True)
    os.chmod(pw, 0o644)
    broker = started(Mosquitto(extra="password_file %s\n" % pw, anonymous=False))
    g = gateway(tmp_path, broker.port, username="gateway", password="wrong")
    try:
        time.sleep(1)
        assert not g.sources[0].connected.is_set()
        assert g.metrics.total("vistelse_gateway_mqtt_connections_total") == 0
    finally:
        g.shutdown()
        broker.stop()


def test_reconnects_after_broker_restart_and_resumes_session(tmp_path):
    broker = started(Mosquitto(persistence_dir=tmp_path))
    g = gateway(tmp_path, broker.port)
    try:
        subscribed(g)
        publish(broker.port, [1, 2])
        wait_reports(g, 2)
        broker.proc.terminate()
        broker.proc.wait()
        time.sleep(0.5)
        broker.start()                            # same port, same persistence file
        assert _wait(lambda: g.metrics.total("vistelse_gateway_mqtt_connections_total") >= 2, 10)
        publish(broker.port, [3, 4])
        wait_reports(g, 4)
        # the gateway stops; uplinks published meanwhile wait in its persistent session
        g.shutdown()
        publish(broker.port, [5, 6, 7])
        g = gateway(tmp_path, broker.port)
        wait_reports(g, 7)
    finally:
        g.shutdown()
        broker.stop()


def _wait(pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False
