"""Sensor drivers (LD2450 over UART, VL53L5CX adapter), record mode on the
node and `vistelse record` on the host.

The LD2450 driver runs against the UART emulator in
tools/vistelse_tools/emulators/ld2450.py (command ACKs as the radar sends
them; data frames from the simulator's radar model or a recording, with
garbage, false headers, cut frames and short reads), under CPython and
under MicroPython. The VL53L5CX adapter runs against a fake with the
method names of SparkFun's qwiic_vl53l5cx driver. `vistelse record` runs
against the virtual board with the radar emulator on its UART.
"""
import ast
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from vistelse_node import record as node_record
from vistelse_node.clock import SimClock
from vistelse_node.sensors import ld2450_frames
from vistelse_node.sensors.ld2450 import LD2450, LD2450Error
from vistelse_node.sensors.vl53l5cx import VL53L5CX, VL53L5CXError, zone_map
from vistelse_tools import record as host_record
from vistelse_tools import simulate
from vistelse_tools.deploy import board_facts
from vistelse_tools.emulators import ld2450 as radar_emulator
from vistelse_tools.recording import RecordingError, read_recording


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
EMULATORS = os.path.join(ROOT, "tools", "vistelse_tools", "emulators")
RECORDINGS = os.path.join(ROOT, "recordings")
BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def radar_frames():
    return radar_emulator.simulated_frames(minutes=1.0, seed=3)


class Spy:
    """A UART wrapper that keeps what the driver wrote."""

    def __init__(self, uart):
        self.uart = uart
        self.written = []

    def write(self, data):
        self.written.append(bytes(data))
        return self.uart.write(data)

    def any(self):
        return self.uart.any()

    def readinto(self, buf, nbytes=None):
        return self.uart.readinto(buf, nbytes)


# --- LD2450 ------------------------------------------------------------------------------

def test_setup_sends_the_documented_command_frames_and_reads_the_acks(radar_frames):
    clock = SimClock()
    emu = radar_emulator.LD2450(radar_frames, lambda: clock.elapsed_ms)
    clock.advance(450)                    # frames are already streaming when setup starts
    spy = Spy(emu)
    radar = LD2450(spy, clock)
    radar.setup()
    assert spy.written == [bytes.fromhex("fdfcfbfa0400ff00010004030201"),     # enable configuration
                           bytes.fromhex("fdfcfbfa0200900004030201"),          # multi-target tracking
                           bytes.fromhex("fdfcfbfa0200fe0004030201")]          # end configuration
    assert (radar.protocol_version, radar.buffer_size) == (1, 0x40)
    assert emu.mode == 2 and not emu.config


def test_every_whole_frame_comes_through_garbage_cut_frames_and_short_reads(radar_frames):
    clock = SimClock()
    emu = radar_emulator.LD2450(radar_frames, lambda: clock.elapsed_ms, garbage_rate=0.2, partial_rate=0.05,
                                chunk_max=9, seed=11)
    radar = LD2450(emu, clock)
    radar.setup()
    first = len(emu.sent)
    got = []
    while clock.elapsed_ms < 62000:
        frame = radar.read_frame()
        if frame is None:
            clock.advance(7)
        else:
            assert len(frame) == 30 and frame[:4] == ld2450_frames.HEADER
            got.append(bytes(frame))
    assert len(got) > 550 and got == emu.sent[first:]
    assert radar.frames == len(got) and radar.dropped_bytes() > 0
    assert 1800 <= radar.silent_ms() <= 2200           # the frames ran out 2 s before the end
    # the frames parse as the pipeline will read them
    out = [[0, 0, 0] for _ in range(3)]
    assert sum(ld2450_frames.parse_frame(f, out) for f in got) > 0


def test_frames_from_a_shared_recording_come_through_unchanged():
    path = os.path.join(RECORDINGS, "edge_uturn_ld2450.rec.jsonl.gz")
    frames = radar_emulator.recording_frames(path)[:300]
    clock = SimClock()
    emu = radar_emulator.LD2450(frames, lambda: clock.elapsed_ms, garbage_rate=0.1, chunk_max=31)
    radar = LD2450(emu, clock)
    radar.setup()
    first = len(emu.sent)
    got = []
    for _ in range(20000):
        frame = radar.read_frame()
        if frame is None:
            clock.advance(10)
        else:
            got.append(bytes(frame))
    assert got == frames[first:] and len(got) > 250


def test_a_missed_enable_is_retried_and_no_answer_is_a_clear_error(radar_frames):
    clock = SimClock()
    emu = radar_emulator.LD2450(radar_frames, lambda: clock.elapsed_ms, miss_enable=2)
    radar = LD2450(emu, clock)
    radar.setup()                         # third try answered
    assert [w for w, _ in emu.commands] == [0x00FF, 0x00FF, 0x00FF, 0x0090, 0x00FE]

    emu = radar_emulator.LD2450(radar_frames, lambda: clock.elapsed_ms, miss_enable=99)
    radar = LD2450(emu, clock, ack_timeout_ms=200, retries=3)
    start = clock.elapsed_ms
    with pytest.raises(LD2450Error, match=r"no ACK to command 0x00ff within 200 ms \(3 tries\).*256000 baud"):
        radar.setup()
    assert 600 <= clock.elapsed_ms - start <= 700

    silent = radar_emulator.LD2450([], lambda: clock.elapsed_ms)
    silent.powered = False                # nothing on the wire at all
    with pytest.raises(LD2450Error, match="check wiring"):
        LD2450(silent, clock).setup()


def test_a_refused_command_is_an_error_and_configuration_mode_is_still_left(radar_frames):
    clock = SimClock()
    emu = radar_emulator.LD2450(radar_frames, lambda: clock.elapsed_ms, refuse=(0x0090,))
    radar = LD2450(emu, clock)
    with pytest.raises(LD2450Error, match=r"refused command 0x0090 \(status 1\)"):
        radar.setup()
    assert [w for w, _ in emu.commands] == [0x00FF, 0x0090, 0x00FE]
    assert not emu.config                 # reporting again, not stuck silent


def test_a_silent_radar_shows_in_health_and_reinit_recovers_it(radar_frames):
    clock = SimClock()
    emu = radar_emulator.LD2450(radar_frames, lambda: clock.elapsed_ms, loop=True)
    radar = LD2450(emu, clock)
    radar.setup()
    for _ in range(50):
        radar.read_frame()
        clock.advance(20)
    assert radar.frames > 0 and radar.silent_ms() < 150
    emu.config = True                     # e.g. a glitch left the radar in configuration mode
    for _ in range(300):
        assert radar.read_frame() is None
        clock.advance(20)
    assert radar.silent_ms() >= 5900
    radar.reinit()
    n = radar.frames
    for _ in range(50):
        radar.read_frame()
        clock.advance(20)
    assert radar.frames > n and radar.silent_ms() < 150 and radar.reinits == 1


def test_sensor_mode_downlink_switches_single_and_multi_target_tracking(radar_frames):
    clock = SimClock()
    emu = radar_emulator.LD2450(radar_frames, lambda: clock.elapsed_ms)
    radar = LD2450(emu, clock)
    radar.set_mode("radar_single")            # before setup: used by setup
    radar.setup()
    assert emu.mode == 1
    radar.set_mode("radar_multi")             # running: configured at once
    assert emu.mode == 2 and not emu.config
    assert [w for w, _ in emu.commands] == [0x00FF, 0x0080, 0x00FE, 0x00FF, 0x0090, 0x00FE]
    with pytest.raises(ValueError):
        radar.set_mode("tof_8x8")


LD2450_SCENARIO = """
import hashlib
from binascii import hexlify, unhexlify
from vistelse_node.clock import SimClock
from vistelse_node.sensors.ld2450 import LD2450, LD2450Error
from {emulators}.ld2450 import LD2450 as Radar

def scenario(frames):
    clock = SimClock()
    emu = Radar(frames, lambda: clock.elapsed_ms, garbage_rate=0.15, partial_rate=0.05, chunk_max=9,
                miss_enable=1, seed=7)
    clock.advance(250)
    radar = LD2450(emu, clock)
    radar.setup()
    first = len(emu.sent)
    got = []
    while clock.elapsed_ms < 30000:
        f = radar.read_frame()
        if f is None:
            clock.advance(7)
        else:
            got.append(bytes(f))
    h = hashlib.sha256()
    for f in got:
        h.update(f)
    same = got == emu.sent[first:]
    try:
        LD2450(Radar([], lambda: clock.elapsed_ms, miss_enable=9), clock).setup()
        error = None
    except LD2450Error as exc:
        error = str(exc)[:36]
    return [len(got), hexlify(h.digest()).decode(), same, radar.frames, radar.dropped_bytes(),
            radar.protocol_version, [w for w, v in emu.commands], error]
"""


def test_ld2450_driver_gives_the_same_frames_under_micropython(micropython, radar_frames):
    from vistelse_tools.micropython import BOARD_FILES
    frames = [f.hex() for f in radar_frames[:320]]
    ns = {}
    exec(LD2450_SCENARIO.format(emulators="vistelse_tools.emulators"), ns)
    expected = ns["scenario"](frames)
    assert expected[0] > 250 and expected[2] is True and expected[7].startswith("no ACK to command 0x00ff")
    out = micropython(LD2450_SCENARIO.format(emulators="emulators")
                      + "import json\nprint(json.dumps(scenario(%r)))\n" % frames,
                      files=BOARD_FILES + ((EMULATORS, "/flash/lib/emulators"),))
    assert json.loads(out.strip().splitlines()[-1]) == expected


# --- VL53L5CX ----------------------------------------------------------------------------

# A stand-in for qwiic_vl53l5cx.QwiicVL53L5CX (sparkfun-qwiic-vl53l5cx 2.0.0):
# the same method names, return conventions and results object.
FAKE_TOF = """
class Results:
    def __init__(self):
        self.distance_mm = [0] * 64
        self.target_status = [0] * 64


class FakeQwiicVL53L5CX:
    kStatusOK = 0
    kStatusInvalidParam = 127
    kResolution4x4 = 16
    kResolution8x8 = 64
    kRangingModeContinous = 1
    kRangingModeAutonomous = 3

    def __init__(self, frames, clock, connected=True):
        self.frames = frames            # [(mm, status)] in the driver's zone order
        self.clock = clock
        self.connected = connected
        self.calls = []
        self.resolution = 16
        self.hz = 1
        self.ranging = False
        self.index = 0
        self.due = 0

    def is_connected(self):
        return self.connected

    def begin(self):
        self.calls.append("begin")
        return self.connected

    def set_resolution(self, resolution):
        self.calls.append(("set_resolution", resolution))
        if resolution not in (16, 64):
            return self.kStatusInvalidParam
        self.resolution = resolution
        return self.kStatusOK

    def get_resolution(self):
        return self.resolution

    def set_ranging_mode(self, mode):
        self.calls.append(("set_ranging_mode", mode))
        return self.kStatusOK

    def set_ranging_frequency_hz(self, hz):
        self.calls.append(("set_ranging_frequency_hz", hz))
        if not 1 <= hz <= (15 if self.resolution == 64 else 60):
            return False
        self.hz = hz
        return True

    def start_ranging(self):
        self.calls.append("start_ranging")
        self.ranging = True
        self.due = self.clock.elapsed_ms + 1000 // self.hz
        return self.kStatusOK

    def stop_ranging(self):
        self.calls.append("stop_ranging")
        self.ranging = False
        return self.kStatusOK

    def check_data_ready(self):
        return self.ranging and self.index < len(self.frames) and self.clock.elapsed_ms >= self.due

    def get_ranging_data(self):
        mm, status = self.frames[self.index]
        self.index += 1
        self.due += 1000 // self.hz
        r = Results()
        r.distance_mm[:len(mm)] = mm
        r.target_status[:len(status)] = status
        return r
"""
_fake = {}
exec(FAKE_TOF, _fake)
FakeQwiicVL53L5CX = _fake["FakeQwiicVL53L5CX"]
# The real driver's methods the adapter relies on (qwiic_vl53l5cx.py of the pinned release).
REAL_METHODS = ("begin", "set_resolution", "set_ranging_mode", "set_ranging_frequency_hz", "start_ranging",
                "stop_ranging", "check_data_ready", "get_ranging_data")


@pytest.fixture(scope="module")
def tof_site():
    scene, header = simulate.passage_site(0.5, seed=2)
    frames = [(f["mm"], f["status"]) for f in simulate.vl53l5cx_frames(scene, header, seed=2)]
    return header, frames


def test_the_fake_has_the_real_drivers_method_names():
    for name in REAL_METHODS:
        assert callable(getattr(FakeQwiicVL53L5CX, name))
    assert FakeQwiicVL53L5CX.kRangingModeContinous == 1        # the real package's spelling


def test_vl53l5cx_adapter_starts_the_sensor_and_gives_frames_in_recording_order(tof_site):
    header, frames = tof_site
    clock = SimClock()
    driver = FakeQwiicVL53L5CX(frames, clock)
    tof = VL53L5CX(driver, clock)
    tof.setup()
    assert driver.calls == ["begin", ("set_resolution", 64), ("set_ranging_mode", 1),
                            ("set_ranging_frequency_hz", 15), "start_ranging"]
    got = []
    while clock.elapsed_ms < 40000:
        frame = tof.read_frame()
        if frame is None:
            clock.advance(5)
        else:
            got.append((list(frame[0]), list(frame[1])))
    assert got == frames and tof.frames == len(frames)
    assert tof.silent_ms() > 5000          # the fake ran out of frames
    tof.reinit()
    assert driver.calls.count("begin") == 2 and "stop_ranging" in driver.calls and tof.reinits == 1


def test_vl53l5cx_adapter_errors_and_4x4():
    clock = SimClock()
    with pytest.raises(VL53L5CXError, match="did not start"):
        VL53L5CX(FakeQwiicVL53L5CX([], clock, connected=False), clock).setup()
    with pytest.raises(ValueError):
        VL53L5CX(FakeQwiicVL53L5CX([], clock), clock, resolution=8, rate_hz=30)
    small = [(list(range(100, 116)), [5] * 16)]
    tof = VL53L5CX(FakeQwiicVL53L5CX(small, clock), clock, resolution=4, rate_hz=60)
    tof.setup()
    clock.advance(20)
    mm, status = tof.read_frame()
    assert mm == list(range(100, 116)) and status == [5] * 16


def test_vl53l5cx_sensor_mode_switches_resolution_without_a_new_upload(tof_site):
    _, frames = tof_site
    clock = SimClock()
    small = [(list(range(16)), [5] * 15 + [255])]
    driver = FakeQwiicVL53L5CX(frames[:2] + small, clock)
    tof = VL53L5CX(driver, clock)
    tof.setup()
    clock.advance(200)
    assert len(tof.read_frame()[0]) == 64
    tof.set_mode("tof_4x4")
    assert driver.calls.count("begin") == 1
    assert driver.calls[-5:] == ["stop_ranging", ("set_resolution", 16), ("set_ranging_mode", 1),
                                 ("set_ranging_frequency_hz", 15), "start_ranging"]
    assert tof.resolution == 4 and len(tof.mm) == 16
    driver.index = 2
    clock.advance(200)
    mm, status = tof.read_frame()
    assert mm == list(range(16)) and status[-1] == 255
    with pytest.raises(ValueError):
        tof.set_mode("radar_multi")


def test_zone_map_turns_and_mirrors_the_grid():
    r = 8
    assert zone_map(r) == list(range(64))
    assert zone_map(r, rotate=4) == list(range(64))
    assert sorted(zone_map(r, rotate=1, mirror=True)) == list(range(64))
    quarter = zone_map(r, rotate=1)
    # driver zone (row 0, col 7) is at +x, -y; a quarter turn counter-clockwise puts it at +x, +y
    assert quarter.index(0 * r + 7) == 7 * r + 7
    assert zone_map(r, mirror=True)[0] == 7
    assert zone_map(r, rotate=2) == list(reversed(range(64)))


def test_vl53l5cx_adapter_runs_under_micropython(micropython, tof_site):
    from vistelse_tools.micropython import BOARD_FILES
    _, frames = tof_site
    script = FAKE_TOF + """
from vistelse_node.clock import SimClock
from vistelse_node.sensors.vl53l5cx import VL53L5CX
import json
FRAMES = %r
clock = SimClock()
tof = VL53L5CX(FakeQwiicVL53L5CX(FRAMES, clock), clock, rotate=1)
tof.setup()
got = []
while clock.elapsed_ms < 3000:
    f = tof.read_frame()
    if f is None:
        clock.advance(5)
    else:
        got.append([list(f[0]), list(f[1])])
print(json.dumps(got))
""" % ([list(f) for f in frames[:30]],)
    got = json.loads(micropython(script, files=BOARD_FILES).strip().splitlines()[-1])
    zmap = zone_map(8, rotate=1)
    want = [[[mm[j] for j in zmap], [st[j] for j in zmap]] for mm, st in frames[:len(got)]]
    assert len(got) == 30
    assert got == want


# --- record mode on the node -------------------------------------------------------------

def _record_text(sensor, clock, **kw):
    out = io.StringIO()
    n = node_record.run(sensor, clock=clock, out=out, **kw)
    return n, out.getvalue()


def _to_file(text, path):
    rec = host_record.Recorder(str(path), log=io.StringIO())
    rec.feed(text.encode())
    rec.close()
    return rec


def test_record_mode_streams_ld2450_frames_that_read_back_identical(radar_frames, tmp_path):
    clock = SimClock()
    emu = radar_emulator.LD2450(radar_frames, lambda: clock.elapsed_ms, garbage_rate=0.1, chunk_max=13)
    radar = LD2450(emu, clock)
    radar.setup()
    first = len(emu.sent)
    site = {"mount": {"height_mm": 2100}, "interval_s": 60,
            "zones": [{"id": "plaza", "polygon_mm": [[-2000, 500], [2000, 500], [2000, 5000], [-2000, 5000]]}],
            "lines": [{"id": "gate", "a_mm": [-1500, 3000], "b_mm": [1500, 3000]}]}
    n, text = _record_text(radar, clock, max_frames=200, site=site, start="2026-05-01T08:00:00Z")
    lines = text.splitlines()
    assert n == 200 and lines[-1].startswith("# record: 200 frames")
    rec = _to_file(text, tmp_path / "radar.rec.jsonl.gz")
    assert rec.frames == 200 and rec.rejected == 0
    header, frames = read_recording(str(tmp_path / "radar.rec.jsonl.gz"))
    frames = list(frames)
    assert header["sensor"] == "ld2450" and header["rate_hz"] == 10 and header["mount"] == {"height_mm": 2100}
    assert header["zones"] == site["zones"] and header["lines"] == site["lines"] and header["interval_s"] == 60
    assert header["start"] == "2026-05-01T08:00:00Z"
    assert [bytes.fromhex(f["raw"]) for f in frames] == emu.sent[first:first + 200]
    ts = [f["t_ms"] for f in frames]
    assert ts == sorted(ts) and 19000 <= ts[-1] - ts[0] <= 20500     # 10 frames a second
    with gzip.open(str(tmp_path / "radar.rec.jsonl.gz"), "rt") as f:
        assert len(f.read().splitlines()) == 201


def test_record_mode_streams_vl53l5cx_frames_that_read_back_identical(tof_site, tmp_path):
    _, frames = tof_site
    clock = SimClock()
    tof = VL53L5CX(FakeQwiicVL53L5CX(frames, clock), clock)
    tof.setup()
    n, text = _record_text(tof, clock, minutes=0.5, site={"mount": {"height_mm": 2800}})
    assert n == len(frames)
    _to_file(text, tmp_path / "tof.rec.jsonl")
    header, got = read_recording(str(tmp_path / "tof.rec.jsonl"))
    assert header["mount"] == {"height_mm": 2800, "resolution": 8, "fov_deg": 45} and header["rate_hz"] == 15
    assert [(f["mm"], f["status"]) for f in got] == frames


def test_record_mode_stops_cleanly_on_ctrl_c_and_reports_a_silent_sensor(radar_frames):
    clock = SimClock()

    class Interrupted:
        name, rate_hz, calls = "ld2450", 10, 0

        def read_frame(self):
            self.calls += 1
            if self.calls == 5:
                raise KeyboardInterrupt
            return radar_frames[self.calls]

    n, text = _record_text(Interrupted(), clock)
    assert n == 4 and text.splitlines()[-1].endswith("stopped: interrupted")
    assert all(line.endswith("}") for line in text.splitlines()[:-1])

    class Silent:
        name, rate_hz, reinits = "ld2450", 10, 0

        def read_frame(self):
            return None

        def reinit(self):
            self.reinits += 1

    silent = Silent()
    n, text = _record_text(silent, clock, minutes=0.55)
    said = [line for line in text.splitlines() if line.startswith("# sensor silent")]
    assert n == 0 and said[0] == "# sensor silent for 5 s" and len(said) == 6
    assert silent.reinits == 2            # at 15 s and at 30 s


def test_record_mode_runs_under_micropython_and_its_lines_read_back(micropython, radar_frames, tmp_path):
    from vistelse_tools.micropython import BOARD_FILES
    frames = [f.hex() for f in radar_frames[:120]]
    script = """
import io
from vistelse_node.clock import SimClock
from vistelse_node.sensors.ld2450 import LD2450
from vistelse_node import record
from emulators.ld2450 import LD2450 as Radar
clock = SimClock()
emu = Radar(%r, lambda: clock.elapsed_ms, garbage_rate=0.1, chunk_max=11)
radar = LD2450(emu, clock)
radar.setup()
first = len(emu.sent)
out = io.StringIO()
n = record.run(radar, clock=clock, out=out, max_frames=80, site={"mount": {"height_mm": 1700}}, start="x")
print(out.getvalue())
print("SENT", first, len(emu.sent))
""" % frames
    out = micropython(script, files=BOARD_FILES + ((EMULATORS, "/flash/lib/emulators"),))
    text, sent = out.rsplit("SENT", 1)
    first, _ = map(int, sent.split())
    rec = _to_file(text, tmp_path / "mp.rec.jsonl.gz")
    assert rec.frames == 80 and rec.rejected == 0
    header, got = read_recording(str(tmp_path / "mp.rec.jsonl.gz"))
    assert [f["raw"] for f in got] == frames[first:first + 80]


# --- no radio path ---------------------------------------------------------------------

def _imports(path, package):
    """Modules imported by a firmware file, as absolute names."""
    tree = ast.parse(open(path).read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names.add(base)
            names.update(base + "." + a.name for a in node.names)
    return names


def _module_file(name):
    base = os.path.join(FIRMWARE, *name.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.exists(candidate):
            return candidate
    return None


def test_record_mode_and_the_sensors_never_reach_the_modem():
    roots = ["vistelse_node.record"] + ["vistelse_node.sensors." + f[:-3] for f in
                                        sorted(os.listdir(os.path.join(FIRMWARE, "vistelse_node", "sensors")))
                                        if f.endswith(".py") and f != "__init__.py"]
    assert "vistelse_node.sensors.ld2450" in roots and "vistelse_node.sensors.vl53l5cx" in roots
    seen, todo = set(), list(roots)
    while todo:                            # everything they import, transitively
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        for imported in _imports(path, package):
            assert not (imported == "vistelse_node.modem" or imported.startswith("vistelse_node.modem.")), \
                "%s imports %s: record mode must have no radio path" % (name, imported)
            if imported.startswith("vistelse_node"):
                todo.append(imported)
    assert "vistelse_node.clock" in seen


def test_the_ast_check_would_catch_a_modem_import(tmp_path):
    for source in ("from vistelse_node.modem import base\n", "import vistelse_node.modem.rak3172\n",
                   "from vistelse_node import modem\n", "from ..modem import base\n", "from .. import modem\n"):
        path = tmp_path / "m.py"
        path.write_text(source)
        names = _imports(str(path), "vistelse_node.sensors")
        assert any(n == "vistelse_node.modem" or n.startswith("vistelse_node.modem.") for n in names), source


# --- vistelse record on the host ---------------------------------------------------------

def test_host_recorder_keeps_bad_lines_out_and_refuses_a_bad_header(tmp_path):
    log = io.StringIO()
    rec = host_record.Recorder(str(tmp_path / "a.rec.jsonl"), "ld2450", log)
    header = node_record.header(type("S", (), {"name": "ld2450", "rate_hz": 10})(), {"mount": {"height_mm": 1500}})
    good = '{"t_ms":100,"raw":"%s"}\n' % ("aaff0300" + "00" * 24 + "55cc")
    rec.feed((json.dumps(header) + "\r\n# hello\r\n" + good + '{"t_ms":50,"raw":"00"}\n{"t_ms":\n'
              + good.replace("100", "200") + '{"t_ms":300,"ra').encode() + b"\x04")
    rec.close()
    assert rec.frames == 2 and rec.rejected == 2
    assert "board: hello" in log.getvalue() and "incomplete last line" in log.getvalue()
    _, frames = read_recording(str(tmp_path / "a.rec.jsonl"))
    assert [f["t_ms"] for f in frames] == [100, 200]
    rec = host_record.Recorder(str(tmp_path / "b.rec.jsonl"), "vl53l5cx", log)
    with pytest.raises(RecordingError, match="records ld2450, not vl53l5cx"):
        rec.feed((json.dumps(header) + "\n").encode())


def _put_record_mode_on(board):
    files = ["vistelse_node/__init__.py", "vistelse_node/clock.py", "vistelse_node/record.py",
             "vistelse_node/sensors/__init__.py", "vistelse_node/sensors/ld2450.py",
             "vistelse_node/sensors/ld2450_frames.py"]
    cmd = [os.path.join(BIN, "mpremote"), "connect", board.port]
    for d in ("vistelse_node", "vistelse_node/sensors"):
        cmd += ["exec", "import os\ntry:\n    os.mkdir(%r)\nexcept OSError:\n    pass" % d, "+"]
    for f in files:
        cmd += ["fs", "cp", os.path.join(FIRMWARE, f), ":" + f, "+"]
    proc = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def board_with_radar(radar_frames):
    from vistelse_tools.virtual_board import VirtualBoard
    t0 = time.monotonic()
    emu = radar_emulator.LD2450(radar_frames, lambda: int((time.monotonic() - t0) * 1000), loop=True,
                                garbage_rate=0.05)
    with radar_emulator.PtyLD2450(emu) as pty, VirtualBoard(uarts={1: pty.path}) as board:
        _put_record_mode_on(board)
        yield board, emu


def test_vistelse_record_from_the_virtual_board(board_with_radar, tmp_path, capsys):
    board, emu = board_with_radar
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"mount": {"height_mm": 1600}, "interval_s": 120,
                                "zones": [{"id": "z", "polygon_mm": [[-1000, 500], [1000, 500], [0, 3000]]}],
                                "lines": []}))
    out = tmp_path / "board.rec.jsonl.gz"
    assert host_record.main(["--port", board.port, "--out", str(out), "--minutes", "0.04", "--uart", "1",
                             "--site", str(site)]) == 0
    printed = capsys.readouterr().out
    header, frames = read_recording(str(out))
    frames = list(frames)
    assert header["mount"] == {"height_mm": 1600} and header["interval_s"] == 120 and header["zones"][0]["id"] == "z"
    assert header["start"].endswith("Z") and header["sensor"] == "ld2450"
    assert len(frames) >= 10 and ("%d frames" % len(frames)) in printed
    sent = set(emu.sent)
    assert all(bytes.fromhex(f["raw"]) in sent for f in frames)
    assert frames[-1]["t_ms"] <= 2400 + 200


def test_ctrl_c_leaves_a_valid_file(board_with_radar, tmp_path):
    board, _ = board_with_radar
    out = tmp_path / "stopped.rec.jsonl.gz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "tools"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "vistelse_tools.cli", "record", "--port", board.port,
                             "--out", str(out), "--minutes", "0.05", "--uart", "1", "--height-mm", "1500"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "stopping the board" in stderr and "stopped by Ctrl-C" in stdout
    header, frames = read_recording(str(out))
    assert header["mount"]["height_mm"] == 1500 and len(list(frames)) >= 1


def test_vistelse_record_on_a_node_whose_watchdog_runs(board_with_radar, tmp_path):
    """The node was interrupted with its watchdog running (nothing stops a
    machine.WDT): record mode re-times and feeds it for the whole recording,
    longer than the node's period, and resets the board at the end."""
    board, _ = board_with_radar
    node_wdt_ms = board_facts("esp32_devkitc")["WDT_TIMEOUT_MS"]
    proc = subprocess.run([os.path.join(BIN, "mpremote"), "connect", board.port, "exec",
                           "import machine\nmachine.WDT(timeout=%d)" % node_wdt_ms],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    before = board.watchdog_resets
    out = tmp_path / "watched.rec.jsonl"
    minutes = (node_wdt_ms + 3000) / 60000.0
    assert host_record.main(["--port", board.port, "--out", str(out), "--minutes", "%.3f" % minutes, "--uart", "1"]) == 0
    header, frames = read_recording(str(out))
    frames = list(frames)
    assert board.watchdog_resets == before and frames[-1]["t_ms"] >= node_wdt_ms + 1000
