"""`vistelse deploy` compiles, copies and verifies, through mpremote, on the virtual board."""
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from vistelse_tools import deploy
from vistelse_tools.deploy import board_facts
from vistelse_tools.virtual_board import VirtualBoard


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_WDT_MS = board_facts("esp32_devkitc")["WDT_TIMEOUT_MS"]


def test_plan_compiles_modules_and_keeps_entry_points_as_source():
    items = {target: compiled for _, target, compiled in deploy.plan("esp32_devkitc")}
    assert items["lib/vistelse_mcodec.mpy"] is True
    assert all(t.endswith(".mpy") for t, compiled in items.items() if compiled)
    assert not any(t.startswith("boards/nucleo") for t in items)


def test_dry_run_changes_nothing(capsys):
    assert deploy.main(["--port", "/dev/null-board", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ":lib/vistelse_mcodec.mpy" in out and "dry run" in out


def test_deploy_to_the_virtual_board_and_run_the_codec_there(tmp_path, capsys):
    config = tmp_path / "vistelse.json"
    config.write_text(json.dumps({"format": "vistelse-node", "version": 1, "dev_eui": "70b3d57ed0000001"}))
    vector = json.load(open(os.path.join(ROOT, "codecs", "vectors", "uplink.json")))[0]
    with VirtualBoard() as board:
        # a node in service: its watchdog runs at the node's period, and nothing stops it
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "mpremote"), "connect", board.port, "exec",
                        "import machine\nmachine.WDT(timeout=%d)" % NODE_WDT_MS], check=True, capture_output=True)
        assert deploy.main(["--port", board.port, "--board", "esp32_devkitc", "--config", str(config)]) == 0
        assert "verified by SHA-256" in capsys.readouterr().out
        assert board.watchdog_resets == 0          # fed all through the copy
        # The compiled codec, imported from the board's flash, gives the vector's bytes.
        data = vector["output"]["data"]
        script = ("import json, vistelse_mcodec as mc\nprint(mc.__file__)\n"
                  "print(list(mc.encode_uplink(json.loads(%r), bytes.fromhex(%r), bytes.fromhex(%r))))\n"
                  % (json.dumps(data), vector["input"]["variables"]["devEui"], vector["input"]["variables"]["tagKey"]))
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "mpremote"), "connect", board.port,
                               "exec", script], capture_output=True, text=True, timeout=60)
        path, frame = proc.stdout.strip().splitlines()[-2:]
        assert path.endswith("lib/vistelse_mcodec.mpy")
        assert json.loads(frame) == vector["input"]["bytes"]
        # a changed file on the board is caught by the hash check
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "mpremote"), "connect", board.port, "exec",
                        "open('vistelse.json', 'a').write(' ')"], check=True, capture_output=True)
        assert deploy.board_hashes(board.port, ["vistelse.json"])["vistelse.json"] != deploy.sha256(str(config))


# --- the VL53L5CX's dependencies: pinned wheels into lib/ -------------------------------------------------

TOF_WHEELS = [deploy.WHEELS[name] for name in deploy.SENSOR_DEPS["vl53l5cx"]]


def node_file(tmp_path, sensor):
    path = tmp_path / ("%s.json" % sensor)
    path.write_text(json.dumps({"format": "vistelse-node", "version": 1, "dev_eui": "70b3d57ed0000001",
                                "sensor": sensor}))
    return str(path)


@pytest.fixture(scope="module")
def tof_wheels():
    """The two pinned wheels in the deploy's own cache (downloaded once from PyPI, then reused)."""
    return deploy.fetch_wheels(TOF_WHEELS)


def test_dry_run_for_a_tof_node_plans_its_driver_and_firmware_blob(tof_wheels, tmp_path, capsys):
    assert deploy.main(["--port", "/dev/null-board", "--config", node_file(tmp_path, "vl53l5cx"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for target in ("lib/qwiic_vl53l5cx/__init__.mpy", "lib/qwiic_vl53l5cx/qwiic_vl53l5cx.mpy",
                   "lib/qwiic_i2c/__init__.mpy", "lib/qwiic_i2c/i2c_driver.mpy", "lib/qwiic_i2c/micropython_i2c.mpy"):
        assert re.search(r":%s +<- \S+\.whl/\S+\.py  \(compiled\)" % re.escape(target), out), target
    for blob in ("firmware", "default_configuration", "default_xtalk", "get_nvm_cmd"):
        line = re.search(r":lib/qwiic_vl53l5cx/vl53l5cx_bin/%s\.bin +<- (.*)" % blob, out)
        assert line and "compiled" not in line.group(1)          # copied as it is
    # no CPython/CircuitPython backends, no wheel metadata on the board
    assert not re.search(r":\S*(linux_i2c|circuitpython_i2c|dist-info)", out)
    assert "linux_i2c.py" in out                                 # but the plan says what it left out
    # the radar needs nothing; --no-deps skips the ToF's wheels
    assert deploy.main(["--port", "/dev/null-board", "--config", node_file(tmp_path, "ld2450"), "--dry-run"]) == 0
    assert "qwiic" not in capsys.readouterr().out
    assert deploy.main(["--port", "/dev/null-board", "--sensor", "vl53l5cx", "--no-deps", "--dry-run"]) == 0
    assert ":lib/qwiic" not in capsys.readouterr().out
    # --sensor against the node file is a mistake, not a choice
    with pytest.raises(SystemExit):
        deploy.main(["--port", "/dev/null-board", "--config", node_file(tmp_path, "ld2450"), "--sensor", "vl53l5cx",
                     "--dry-run"])


@pytest.mark.parametrize("board", sorted(deploy.BOARDS))
def test_the_blob_lands_where_the_board_file_points_the_driver(board, tof_wheels, tmp_path):
    items = deploy.dependency_items("vl53l5cx", str(tmp_path))
    blob = [(source, target) for source, target, _ in items if target.endswith("/firmware.bin")]
    assert len(blob) == 1 and os.path.getsize(blob[0][0]) == 86016
    data_path = re.search(r'^TOF_DATA_PATH = "(.*)"', open(os.path.join(ROOT, "firmware", "boards", board + ".py")).read(),
                          re.M).group(1)
    assert data_path.endswith("/" + os.path.dirname(blob[0][1]))


def test_a_tampered_wheel_is_rejected(tof_wheels, tmp_path, monkeypatch, capsys):
    # a wheel in the cache with one byte of the ToF firmware changed: still a valid zip, not the pinned one
    cache = tmp_path / "cache"
    cache.mkdir()
    good = dict(zip([w.filename for w in TOF_WHEELS], tof_wheels))
    shutil.copy(good[TOF_WHEELS[1].filename], cache / TOF_WHEELS[1].filename)
    with zipfile.ZipFile(good[TOF_WHEELS[0].filename]) as src, \
            zipfile.ZipFile(cache / TOF_WHEELS[0].filename, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/firmware.bin"):
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            dst.writestr(info, data)
    with pytest.raises(RuntimeError, match="SHA-256 .* expected %s for sparkfun-qwiic-vl53l5cx==2.0.0"
                       % TOF_WHEELS[0].sha256):
        deploy.fetch_wheels(TOF_WHEELS, str(cache))
    monkeypatch.setenv("VISTELSE_WHEEL_CACHE", str(cache))
    assert deploy.main(["--port", "/dev/null-board", "--sensor", "vl53l5cx", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "not the pinned wheel" in err and TOF_WHEELS[0].filename in err
    # a download that does not match the pin never enters the cache
    wrong_pin = TOF_WHEELS[1]._replace(sha256="0" * 64)
    with pytest.raises(RuntimeError, match="not the pinned wheel"):
        deploy.fetch_wheels([wrong_pin], str(tmp_path / "fresh"))
    assert not os.path.exists(tmp_path / "fresh" / wrong_pin.filename)


def test_deploy_a_tof_node_to_the_virtual_board_and_import_its_driver(tof_wheels, tmp_path, capsys):
    mpremote = os.path.join(os.path.dirname(sys.executable), "mpremote")
    nvm = zipfile.ZipFile(tof_wheels[0]).read("qwiic_vl53l5cx/vl53l5cx_bin/get_nvm_cmd.bin")
    with VirtualBoard() as board:
        # an earlier `mpremote mip install github:...`: its module file, and a source package that
        # would be imported instead of the .mpy beside it
        subprocess.run([mpremote, "connect", board.port, "exec",
                        "import os\nos.mkdir('lib/qwiic_i2c')\n"
                        "open('lib/qwiic_i2c/__init__.py', 'w').write('raise ImportError(\"stale\")')\n"
                        "open('lib/qwiic_vl53l5cx.py', 'w').write('raise ImportError(\"stale\")')\n"],
                       check=True, capture_output=True)
        # the virtual board's flash is /flash, as on the STM32: its board file's TOF_DATA_PATH applies
        assert deploy.main(["--port", board.port, "--board", "weact_h743",
                            "--config", node_file(tmp_path, "vl53l5cx")]) == 0
        assert "verified by SHA-256" in capsys.readouterr().out
        # The driver imports from the board's flash and finds its firmware blob at the board file's
        # TOF_DATA_PATH. No VL53L5CX sits on the virtual board's I2C, so begin() is not called; a stand-in
        # bus object is enough for the constructor.
        script = ("import os, qwiic_i2c, qwiic_vl53l5cx\nfrom boards import weact_h743 as b\n"
                  "print(qwiic_vl53l5cx.__file__)\n"
                  "print([d.__name__ for d in qwiic_i2c._drivers])\n"
                  "tof = qwiic_vl53l5cx.QwiicVL53L5CX(i2c_driver=object(), dataPath=b.TOF_DATA_PATH)\n"
                  "print(tof.check_data_directory(), os.stat(b.TOF_DATA_PATH + '/firmware.bin')[6])\n"
                  "print(bytes(tof.get_buffer_from_file('get_nvm_cmd.bin')).hex())\n"
                  "print(sorted(os.listdir('lib')))\n")
        proc = subprocess.run([mpremote, "connect", board.port, "exec", script], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        path, drivers, found, blob, listing = proc.stdout.strip().splitlines()[-5:]
        assert path.endswith("lib/qwiic_vl53l5cx/__init__.mpy")
        assert drivers == "['MicroPythonI2C']"
        assert found == "True 86016"
        assert blob == nvm.hex()
        assert "qwiic_vl53l5cx.py" not in listing               # the stale module file is gone


@pytest.mark.parametrize("board_name, sensor, board_kw, why", [
    ("nucleo_f446re", "ld2450", {"flash_bytes": 48 * 1024}, "filesystem"),     # the F446's internal flash
    ("esp32_devkitc", "vl53l5cx", {"heap_bytes": 64 * 1024}, "free heap"),    # too little RAM for the ToF node
])
def test_deploy_refuses_a_board_too_small_before_copying_anything(board_name, sensor, board_kw, why, tmp_path,
                                                                   capsys):
    with VirtualBoard(**board_kw) as board:
        assert deploy.main(["--port", board.port, "--board", board_name, "--no-deps",
                            "--config", node_file(tmp_path, sensor)]) == 1
        err = capsys.readouterr().err
        assert "nothing copied" in err and why in err, err
        assert deploy.board_hashes(board.port, ["main.py", "vistelse.json"]) == {"main.py": None, "vistelse.json": None}


def test_a_frozen_image_gets_only_what_is_not_frozen(capsys):
    """--frozen: firmware/manifest.py is in the image; the filesystem keeps
    the entry points, the board file and the node file."""
    targets = {t for _, t, _ in deploy.plan("esp32_devkitc", frozen=True)}
    assert targets == {"boot.py", "main.py", "boards/__init__.py", "boards/esp32_devkitc.py"}
    assert deploy.frozen_required("esp32_devkitc") and not deploy.frozen_required("esp32_wrover")
    assert deploy.main(["--port", "/dev/null-board", "--board", "esp32_devkitc", "--dry-run"]) == 0
    assert "frozen" in capsys.readouterr().err
