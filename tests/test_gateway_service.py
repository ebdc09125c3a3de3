"""`vistelse gateway` as a service: configuration errors, sd_notify (READY, WATCHDOG,
STOPPING) on a real notify socket, graceful SIGTERM, the systemd unit, the CLI."""
import configparser
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from vistelse_gateway import config as config_mod
from vistelse_gateway.service import main
from vistelse_gateway.testing import free_port

ROOT = pathlib.Path(__file__).resolve().parents[1]
UNIT = ROOT / "gateway/vistelse_gateway/systemd/vistelse-gateway.service"
EXAMPLE = ROOT / "gateway/vistelse_gateway/systemd/gateway.toml.example"

GOOD = """
[gateway]
state_dir = "."
[http]
listen = "127.0.0.1:%d"
[[auth.operator]]
token = "operator-token-0123456789"
"""


@pytest.mark.parametrize("text,message", [
    ("[gateway\n", "not valid TOML"),
    ("[nonsense]\n", "unknown key nonsense"),
    ("[[source]]\ntype = 'kafka'\n", "source[0].type must be one of"),
    ("[[sink]]\ntype = 'ngsi-ld'\n[[auth.operator]]\ntoken='operator-token-0123456789'\n", "url is required"),
    ("[retention]\nraw_hours = 200\n", "justification"),
    ("[http]\nlisten = 'nowhere'\n", "HOST:PORT"),
    ("[[auth.operator]]\ntoken = 'short'\n", "at least 16 characters"),
    ("[ingest]\nbatch_max = 'many'\n", "ingest.batch_max must be a whole number"),
    ("", "no [[auth.operator]] token"),
    ("[store]\nurl = 'mysql://db/x'\n", "store.url must be a postgresql://"),
    ("[[source]]\ntype = 'chirpstack-mqtt'\nshared_group = 'a/b'\n", "shared_group must be"),
    ("[[source]]\ntype = 'chirpstack-mqtt'\nshared_group = 'gw'\nprotocol = '3.1.1'\n", "needs MQTT protocol 5"),
])
def test_bad_configuration_gives_a_clear_error(tmp_path, capsys, text, message):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text("[gateway]\nstate_dir = '.'\n" + text if not text.startswith("[gateway") else text)
    assert main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and message in err


def test_missing_config_file(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_example_configuration_is_valid():
    doc = EXAMPLE.read_text()
    import tomllib
    cfg = config_mod.check(_without_secret_files(tomllib.loads(doc)))
    assert cfg["retention"]["raw_hours"] == 72 and cfg["sinks"][0]["type"] == "ngsi-ld"


def _without_secret_files(doc):
    for k, t in enumerate(doc["auth"]["operator"] + doc["auth"]["ingest"]):
        t.pop("token_file")
        t["token"] = "%020d" % k
    return doc


def test_check_and_device_commands(tmp_path, capsys):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(GOOD % free_port())
    assert main(["--config", str(cfg), "check"]) == 0
    key = tmp_path / "k.hex"
    key.write_text("00" * 32)
    assert main(["--config", str(cfg), "device", "add", "70B3D57ED0000041", "--key-file", str(key),
                 "--network", "chirpstack", "--application", "app-1", "--site", "Torget"]) == 0
    assert main(["--config", str(cfg), "device", "retire", "70b3d57ed0000041"]) == 0
    # adding a retired device again does not silently take its data again
    add = ["--config", str(cfg), "device", "add", "70b3d57ed0000041", "--network", "chirpstack",
           "--application", "app-1", "--site", "Torget"]
    capsys.readouterr()
    assert main(add) == 1
    err = capsys.readouterr().err
    assert "is retired" in err and "--reactivate" in err
    assert main(add + ["--reactivate"]) == 0
    assert main(["--config", str(cfg), "device", "retire", "70b3d57ed0000041"]) == 0
    capsys.readouterr()
    assert main(["--config", str(cfg), "device", "list"]) == 0
    out = capsys.readouterr().out
    assert "70b3d57ed0000041" in out and "retired" in out and "00" * 32 not in out
    assert main(["--config", str(cfg), "verify-log"]) == 0
    # tamper with the log: verify-log fails
    import sqlite3
    db = sqlite3.connect(str(tmp_path / "gateway.sqlite"))
    db.execute("UPDATE access_log SET detail = '{}' WHERE id = 1")
    db.commit()
    db.close()
    capsys.readouterr()
    assert main(["--config", str(cfg), "verify-log"]) == 1
    assert "altered" in capsys.readouterr().out


def test_sd_notify_ready_watchdog_and_graceful_stop(tmp_path):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(GOOD % free_port())
    sock_path = os.path.join(tempfile.mkdtemp(), "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(15)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="400000", JOURNAL_STREAM="8:1234")
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "vistelse_gateway.service", "--config", str(cfg)], env=env,
                            stderr=subprocess.PIPE)
    try:
        got = []
        deadline = time.time() + 15
        while time.time() < deadline and not ("READY=1" in " ".join(got) and got.count("WATCHDOG=1") >= 2):
            got.append(sock.recv(4096).decode())
        assert any(m.startswith("READY=1") for m in got)
        assert got.count("WATCHDOG=1") >= 2          # fed at half of WatchdogSec
        proc.send_signal(signal.SIGHUP)              # `systemctl reload` is not offered; SIGHUP must not stop it
        time.sleep(1)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        while True:
            msg = sock.recv(4096).decode()
            if msg.startswith("STOPPING=1"):
                break
        assert proc.wait(15) == 0
        err = proc.stderr.read().decode()
        assert "<6>vistelse.gateway: gateway running" in err   # journald priorities
        assert "SIGHUP ignored" in err
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


@pytest.mark.parametrize("unit_file,state,config", [
    (UNIT, "vistelse-gateway", "/etc/vistelse/gateway.toml"),
    (UNIT.with_name("vistelse-gateway@.service"), "vistelse-gateway/%i", "/etc/vistelse/gateway-%i.toml"),
])
def test_systemd_unit_is_notify_with_watchdog_and_hardening(unit_file, state, config, tmp_path):
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    text = unit_file.read_text()
    unit.read_string(text)
    svc = unit["Service"]
    assert svc["Type"] == "notify" and "WatchdogSec" in svc
    for key, value in (("DynamicUser", "yes"), ("StateDirectory", state), ("ProtectSystem", "strict"),
                       ("NoNewPrivileges", "yes")):
        assert svc[key] == value
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" in text
    assert "SystemCallFilter=@system-service" in text
    assert "gateway --config ${CREDENTIALS_DIRECTORY}/gateway.toml" in svc["ExecStart"]
    assert "LoadCredential=gateway.toml:%s" % config in text
    if "%i" in state:
        assert "Environment=VISTELSE_INSTANCE=%i" in text
    # reload would have stopped the service (SIGTERM, exit 0); a configuration error (exit 2) is not retried
    assert "ExecReload" not in svc
    assert svc["RestartPreventExitStatus"] == "2" and svc["Restart"] == "on-failure"
    if os.path.exists("/usr/bin/systemd-analyze"):
        target = unit_file
        if "@" in unit_file.name:       # verify an instance of the template
            target = tmp_path / "vistelse-gateway@a.service"
            target.write_text(text)
        verify = subprocess.run(["systemd-analyze", "verify", str(target)], capture_output=True, text=True)
        # the ExecStart binary is not installed here; anything else would be a unit error
        problems = [l for l in verify.stderr.splitlines() if "vistelse-gateway" in l and ".service" in l
                    and "/opt/vistelse" not in l and "ExecStart" not in l]
        assert not problems, problems


def test_vistelse_command_dispatches_to_the_gateway(tmp_path):
    r = subprocess.run([str(ROOT / ".venv/bin/vistelse"), "gateway", "--config", str(tmp_path / "x.toml")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = subprocess.run([str(ROOT / ".venv/bin/vistelse"), "downlink", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--interval" in r.stdout


def test_configuration_changes_are_written_to_the_access_log(tmp_path):
    from vistelse_gateway.service import Gateway
    path = tmp_path / "gateway.toml"
    base = '[gateway]\nstate_dir = "."\n[http]\nenabled = false\n'
    for text in (base, base + "[retention]\nraw_hours = 48\n"):
        path.write_text(text)
        g = Gateway(config_mod.load(str(path)), str(path))
        g.log_configuration()
        g.log_configuration()          # unchanged: nothing new
        g.store.close()
    g = Gateway(config_mod.load(str(path)), str(path))
    actions = [e["action"] for e in reversed(g.store.access_log())]
    assert actions == ["config.first", "config.change"]
    assert g.store.verify_access_log()["ok"]
    g.store.close()


def test_shared_subscription_gives_each_instance_its_own_session():
    doc = {"gateway": {"instance": "gw-b"}, "http": {"enabled": False},
           "source": [{"type": "chirpstack-mqtt", "shared_group": "vistelse"}]}
    cfg = config_mod.check(doc)
    assert cfg["gateway"]["instance"] == "gw-b"
    assert cfg["sources"][0]["client_id"] == "vistelse-gateway-chirpstack-mqtt-gw-b"
    single = config_mod.check({"http": {"enabled": False}, "source": [{"type": "chirpstack-mqtt"}]})
    assert "client_id" not in single["sources"][0]     # one instance keeps its existing session name


def test_postgres_store_is_migrated_by_the_migrate_command(tmp_path, capsys, postgres_server):
    url = postgres_server.create_database()
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(GOOD % free_port() + '[store]\nurl = "%s"\n' % url)
    assert main(["--config", str(cfg), "device", "list"]) == 1
    assert "vistelse gateway migrate" in capsys.readouterr().err
    assert main(["--config", str(cfg), "migrate"]) == 0
    out = capsys.readouterr().out
    assert '"schema_version": 2' in out and "initial schema" in out and "per-device order" in out
    assert main(["--config", str(cfg), "migrate"]) == 0
    assert '"applied": []' in capsys.readouterr().out
    assert main(["--config", str(cfg), "verify-log"]) == 0
    assert '"entries": 1' in capsys.readouterr().out      # the migration is in the access log
