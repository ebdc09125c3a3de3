"""Nothing but the contract's aggregate report goes over the radio.

Three checks, from the source and from a running node:

1. In the firmware, the only call that hands bytes to a modem for an uplink
   is in node.py, and what it hands over is the return value of
   vistelse_mcodec.encode_uplink — whose input is a report of interval
   counts (the CDDL; docs/privacy.md explains every field).
2. The report node.py builds is made only of queue records, which hold
   counts; no module that touches frames or tracks is imported by the
   modem drivers.
3. Every byte a running node writes to its modem, over a scene with people
   in it, parses as AT commands whose payloads decode as contract reports
   and contain no sensor frame.
"""
import ast
import json
import os

import vistelse_codec as vc
from node_fakes import MemFS
from vistelse_tools import simulate
from vistelse_tools.virtual_node import VirtualNode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
DEV = "70b3d57ed0000777"
KEY = bytes(range(7, 39))


def firmware_modules():
    for directory, dirs, files in os.walk(FIRMWARE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path) as f:
                    yield os.path.relpath(path, FIRMWARE), ast.parse(f.read(), path)


def test_only_the_node_sends_uplinks_and_only_encoded_reports():
    senders = []
    for rel, tree in firmware_modules():
        if rel.startswith("vistelse_node/modem/"):
            continue                       # the drivers' own send() definitions
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "send":
                senders.append((rel, node))
    assert [rel for rel, _ in senders] == ["vistelse_node/node.py"]
    call = senders[0][1]
    payload = call.args[1]
    assert isinstance(payload, ast.Name)
    # that name is only ever bound to encode_uplink's result (or the tuple returned by _frame, which builds it so)
    tree = dict(firmware_modules())["vistelse_node/node.py"]
    frame_fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_frame")
    encoders = [n for n in ast.walk(frame_fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr == "encode_uplink"]
    assert encoders and all(isinstance(n.func.value, ast.Name) and n.func.value.id == "mcodec" for n in encoders)
    sends_from = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_maybe_send")
    bindings = [n for n in ast.walk(sends_from) if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Tuple) and any(isinstance(e, ast.Name) and e.id == payload.id for e in t.elts)
                        for t in n.targets)]
    assert bindings and all(isinstance(b.value, ast.Call) and b.value.func.attr == "_frame" for b in bindings)


def test_the_modem_drivers_import_nothing_that_sees_frames_or_tracks():
    forbidden = ("vistelse_node.pipeline", "vistelse_node.track", "vistelse_node.detect", "vistelse_node.sensors",
                 "vistelse_node.record")
    for rel, tree in firmware_modules():
        if not rel.startswith("vistelse_node/modem/"):
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [node.module + "." + a.name for a in node.names]
            for n in names:
                assert not n.startswith(forbidden), "%s imports %s" % (rel, n)


class Wiretap:
    """Between the node's modem driver and the modem: keeps every byte the node writes."""

    def __init__(self, uart):
        self.uart = uart
        self.written = bytearray()

    def write(self, data):
        self.written.extend(data)
        return self.uart.write(data)

    def __getattr__(self, name):
        return getattr(self.uart, name)


def test_everything_the_node_writes_to_its_modem_is_a_command_or_a_report():
    # busy enough that every minute describes k = 5 people (min_count's
    # default) and goes out on its own: four reports
    scene, header = simulate.square_site(4, seed=21, interval_s=60, mean_gap_s=5.0)
    frames, _ = simulate.simulate(scene, header, seed=21)
    lines = [json.dumps(header)] + [json.dumps(f) for f in frames]
    node_file = {"dev_eui": DEV, "tag_key": KEY.hex(), "sensor": "ld2450",
                 "config": {"interval_s": 60, "zones": [z["polygon_mm"] for z in header["zones"]],
                            "lines": [[l["a_mm"], l["b_mm"]] for l in header["lines"]]}}
    vn = VirtualNode(node_file, lines, fs=MemFS())
    tap = Wiretap(vn.emulator)
    vn.modem.uart = tap
    vn.run_for(4 * 60000 + 20000)
    text = tap.written.decode("ascii")
    raw_frames = {bytes.fromhex(f["raw"]) for f in frames if f["raw"][8:56] != "0" * 48}
    payloads = []
    for command in text.split("\r\n"):
        if not command:
            continue
        assert command.startswith("AT"), command
        if command.startswith("AT+SEND="):
            port, hexdata = command[len("AT+SEND="):].split(":")
            payloads.append((int(port), bytes.fromhex(hexdata)))
    assert len(payloads) == 4
    for port, data in payloads:
        assert port == vc.FPORT_REPORT
        report = vc.decode_uplink(data, port, dev_eui=bytes.fromhex(DEV), key=KEY)   # strict: all of it is the report
        assert set(report) <= {"seq", "interval_s", "age_s", "status", "intervals", "tag"}
        assert not any(f[4:28] in data for f in raw_frames)          # no radar target slots in it
