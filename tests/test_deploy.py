"""`vistelse deploy` compiles, copies and verifies, through mpremote, on the virtual board."""
import json
import os
import subprocess
import sys

from vistelse_tools import deploy
from vistelse_tools.virtual_board import VirtualBoard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
        assert deploy.main(["--port", board.port, "--board", "esp32_devkitc", "--config", str(config)]) == 0
        assert "verified by SHA-256" in capsys.readouterr().out
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
