"""Hardware-in-the-loop: the same tests against a real board or the virtual one.

    pytest hil_tests --port /dev/ttyUSB0 --board esp32_devkitc    # a real board (and modem tap, see docs/hil.md)
    pytest hil_tests --virtual                                    # MicroPython WebAssembly behind a pty (default)

Every test talks to the board only through mpremote, exactly as it would to
hardware.
"""
import os
import subprocess
import sys

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("vistelse hardware-in-the-loop")
    group.addoption("--port", default=None, help="serial port of a real board")
    group.addoption("--virtual", action="store_true", help="use the virtual board (the default without --port)")
    group.addoption("--board", default="esp32_devkitc", help="board definition in firmware/boards/")
    group.addoption("--modem-port", default=None,
                    help="a real board's modem UART, wired to this USB-UART adapter: the modem emulator answers there")


class Board:
    """A board reached through mpremote."""

    def __init__(self, port, name, virtual=None):
        self.port = port
        self.name = name
        self.virtual = virtual

    def mpremote(self, *args, timeout=120, check=True):
        exe = os.path.join(os.path.dirname(sys.executable), "mpremote")
        proc = subprocess.run([exe, "connect", self.port] + list(args), capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError("mpremote %s failed: %s%s" % (" ".join(args[:2]), proc.stdout[-2000:],
                                                              proc.stderr[-2000:]))
        return proc.stdout

    def run(self, code, timeout=120):
        """Execute code on the board; its printed output."""
        return self.mpremote("exec", code, timeout=timeout)


DEV_EUI = "70b3d57ed00a1b2c"
TAG_KEY = bytes(range(100, 132))


class Network:
    """What the node's modem talks to: the AT-modem emulator with its
    simulated LoRaWAN session. Uplinks land in `uplinks`; `downlinks` is a
    list of (fPort, bytes) handed out one per uplink (class A)."""

    def __init__(self, device=None, dialect="rak3172"):
        from vistelse_tools.emulators.pty_server import PtyModem
        self.uplinks = []
        self.downlinks = []
        self.server = PtyModem(dialect, device=device, dev_eui=DEV_EUI, on_uplink=self.uplinks.append,
                               downlinks=lambda dev: self.downlinks.pop(0) if self.downlinks else None)
        self.session = self.server.session
        self.path = self.server.path

    def decoded(self):
        import vistelse_codec as vc
        return [vc.decode_uplink(u["data"], u["fport"], dev_eui=bytes.fromhex(DEV_EUI), key=TAG_KEY)
                for u in self.uplinks]


@pytest.fixture(scope="session")
def network(request):
    port = request.config.getoption("--port")
    modem_port = request.config.getoption("--modem-port")
    if port and not modem_port:
        pytest.skip("node tests on a real board need --modem-port (docs/hil.md, the emulator rig)")
    net = Network(device=modem_port if port else None)
    net.server.start()
    yield net
    net.server.stop()


@pytest.fixture(scope="session")
def board(request):
    port = request.config.getoption("--port")
    name = request.config.getoption("--board")
    if port:
        yield Board(port, name)
        return
    from vistelse_tools.virtual_board import VirtualBoard
    net = request.getfixturevalue("network")
    with VirtualBoard(uarts={1: net.path}) as vb:
        yield Board(vb.port, name, virtual=vb)


@pytest.fixture(scope="session")
def node_file(tmp_path_factory, request):
    """The node's vistelse.json, as `vistelse provision` writes it."""
    import json
    from vistelse_tools.provision import node_config
    ids = {"dev_eui": DEV_EUI, "join_eui": "0000000000000000", "app_key": "00112233445566778899aabbccddeeff",
           "tag_key": TAG_KEY.hex()}
    doc = node_config(ids, request.config.getoption("--board"), "ld2450",
                      zones=[[[-2500, 800], [2500, 800], [2500, 5000], [-2500, 5000]]],
                      lines=[[[0, 5000], [0, 800]]], interval_s=60, min_count=3)
    path = tmp_path_factory.mktemp("node") / "vistelse.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="session")
def deployed(board, node_file):
    """The firmware and the node file, deployed with `vistelse deploy` and verified by hash."""
    from vistelse_tools import deploy
    assert deploy.main(["--port", board.port, "--board", board.name, "--no-deps", "--config", str(node_file)]) == 0
    return board
