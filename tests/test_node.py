"""The node runtime end to end: firmware Node + modem driver + AT emulator +
persistent queue + send policy, on simulated time that crosses the 2^30
ticks wrap, under CPython and under MicroPython."""
import json
import os

import pytest

import vistelse_codec as vc
from node_fakes import MemFS, PowerCut
from vistelse_node import airtime
from vistelse_node.clock import SimClock
from vistelse_tools import simulate
from vistelse_tools.micropython import BOARD_FILES
from vistelse_tools.virtual_node import VirtualNode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV = "70b3d57ed0000042"
TAG_KEY = bytes(range(32))


def site(minutes=6, seed=3, interval_s=60, kind="radar"):
    scene, header = (simulate.square_site if kind == "radar" else simulate.passage_site)(minutes, seed, interval_s)
    frames, truth = simulate.simulate(scene, header, seed)
    lines = [json.dumps(header)] + [json.dumps(f) for f in frames]
    return header, lines, truth


def node_file(header, interval_s=60):
    return {"dev_eui": DEV, "join_eui": "0000000000000000", "app_key": "00112233445566778899aabbccddeeff",
            "tag_key": TAG_KEY.hex(), "sensor": header["sensor"], "mount": header["mount"],
            "config": {"interval_s": interval_s, "min_count": 3,
                       "zones": [z["polygon_mm"] for z in header["zones"]],
                       "lines": [[l["a_mm"], l["b_mm"]] for l in header["lines"]]}}


def decode(up):
    return vc.decode_uplink(up["data"], up["fport"], dev_eui=bytes.fromhex(DEV), key=TAG_KEY)


def covered(reports):
    """Every interval sequence number the reports carry, in order."""
    seqs = []
    for r in reports:
        s = r["seq"]
        for iv in r["intervals"]:
            seqs.extend(range(s, s + iv.get("span", 1)))
            s += iv.get("span", 1)
    return seqs


def line_sums(truth, line="path"):
    return (sum(iv["lines"][line]["in"] for iv in truth["intervals"]),
            sum(iv["lines"][line]["out"] for iv in truth["intervals"]))


@pytest.mark.parametrize("dialect", ["rak3172", "wioe5"])
def test_node_reports_what_the_pipeline_measured(dialect):
    header, lines, truth = site()
    vn = VirtualNode(node_file(header), lines, dialect=dialect, fs=MemFS())
    vn.run_for(6 * 60000 + 30000)
    reports = [decode(u) for u in vn.uplinks]
    assert covered(reports) == list(range(6))                       # nothing lost, nothing twice
    assert reports[0]["status"]["reset_cause"] == "power_on"
    assert all(r["status"]["reset_cause"] is None for r in reports[1:])
    assert all(r["status"]["config_version"] == 0 and r["status"]["battery_mv"] == 3600 for r in reports)
    assert all(r["age_s"] is not None and 0 <= r["age_s"] <= 30 for r in reports)
    # the node's counts are the pipeline's: close to the truth of the scene
    true_in, true_out = line_sums(truth)
    last = reports[-1]["intervals"][-1]["lines"][0]
    assert abs(last["total_in"] - true_in) <= max(2, true_in // 5)
    assert abs(last["total_out"] - true_out) <= max(2, true_out // 5)
    visits = sum(iv["zones"][0]["visits"] for r in reports for iv in r["intervals"])
    true_visits = sum(iv["zones"]["square"]["visits"] for iv in truth["intervals"])
    assert abs(visits - true_visits) <= max(3, true_visits // 5)
    # the ticks wrapped (SimClock starts 10 s before 2^30) and the loop stayed responsive
    assert vn.clock.now < 2 ** 29
    assert vn.wdt.longest_ms <= 20


def test_intervals_before_a_reset_are_sent_once_with_time_lost():
    header, lines, _ = site(minutes=5)
    fs = MemFS()
    vn = VirtualNode(node_file(header), lines, fs=fs, session_kw={"join_failures": 50})   # no uplink gets out
    vn.run_for(3 * 60000 + 5000)
    assert vn.uplinks == [] and len(vn.node.queue) == 3
    before = vn.node.queue.tot[:2]
    vn.session.join_failures = 0
    vn.restart("watchdog")
    vn.run_for(2 * 60000 + 20000)
    reports = [decode(u) for u in vn.uplinks]
    assert covered(reports) == list(range(5))
    first = reports[0]
    assert first["status"]["reset_cause"] == "watchdog"
    assert first["age_s"] is None                     # health bit time_lost on the wire
    assert "modem_trouble" not in first["status"]["health"] or first["seq"] == 0
    # cumulative totals continue across the reset
    totals = [r["intervals"][-1]["lines"][0] for r in reports]
    assert totals[0]["total_in"] >= before[0] and totals[0]["total_out"] >= before[1]
    assert all(a["total_in"] <= b["total_in"] for a, b in zip(totals, totals[1:]))


def test_power_cut_at_every_flash_write_of_a_node_loses_and_repeats_nothing():
    """Cut the power at write step k (k = 1, 2, ...): the node that starts
    next from what is on flash must neither skip nor resend an interval."""
    header, lines, _ = site(minutes=4)
    k = 1
    while True:
        fs = MemFS(cut_at=k, seed=k)
        clock = SimClock()
        first = []
        try:
            vn = VirtualNode(node_file(header), lines, fs=fs, clock=clock, on_uplink=first.append)
            vn.run_for(4 * 60000 + 20000)
        except PowerCut:
            pass
        else:
            break                     # the run has fewer than k writes: every step was cut once
        sent = covered([decode(u) for u in first])
        vn2 = VirtualNode(node_file(header), lines, fs=fs.after_power_cut(), clock=clock)
        vn2.run_for(5 * 60000 + 30000)
        again = covered([decode(u) for u in vn2.uplinks])
        # the records of an uplink are marked sent on flash before the
        # hand-over, so a cut during the hand-over may leave one marked that
        # never went (the next receipt finds it missing); kept from the
        # earlier behaviour: the last one may come again, the gateway drops it
        # by sequence number. Anything else sent twice, or a gap, is a fault.
        in_flight = set(sent[-1:])
        assert not (set(again) & set(sent)) - in_flight, (k, sent, again)
        if sent and again:
            assert again[0] <= sent[-1] + 1, (k, sent, again)
        k += 1
    assert k > 10


def run_a_day(dr):
    header, lines, _ = site(minutes=30, interval_s=300)
    vn = VirtualNode(node_file(header, interval_s=300), lines, fs=MemFS(), loop=True,
                     session_kw={"dr": dr, "adr": False})
    vn.run_for(86400000, step_ms=200)
    return vn, [decode(u) for u in vn.uplinks]


def waiting(vn):
    """Queued records not yet sent (sent ones wait in the queue for a receipt)."""
    return [rec for rec in vn.node.queue.records if rec[0] not in vn.node.queue.sent]


def accounted_for(vn, reports):
    """Crossings delivered plus crossings still queued equal the node's cumulative count."""
    delivered = sum(iv["lines"][0]["in"] for r in reports for iv in r["intervals"])
    queued = sum(rec[4][0][0] for rec in waiting(vn))
    return delivered + queued == vn.node.queue.tot[0]


@pytest.mark.parametrize("dr", [0, 3])
def test_a_day_within_duty_cycle_and_budget_drops_nothing(dr):
    """5-minute intervals for 24 hours: one by one they would need more than
    30 s of airtime a day at DR0-DR3. At DR3 (115 bytes) the node batches
    several intervals per uplink; at DR0 (51 bytes) one interval fills an
    uplink. Where batching is not enough the queue merges old intervals
    (coarser time, the same counts)."""
    vn, reports = run_a_day(dr)
    ups = vn.uplinks
    seqs = covered(reports)
    assert seqs == list(range(len(seqs)))                            # contiguous, nothing twice
    in_queue = sum(rec[1] for rec in waiting(vn))
    assert len(seqs) + in_queue in (287, 288)                        # every interval of the day
    assert accounted_for(vn, reports)
    used_ms = sum(u["airtime_us"] for u in ups) / 1000
    assert used_ms <= airtime.TTN_FAIR_USE_MS_PER_DAY
    assert all(u["dr"] == dr and len(u["data"]) <= airtime.max_payload(dr) for u in ups)
    # duty cycle: the sub-band stays quiet 99x each uplink's airtime
    # (the emulator refuses earlier uplinks, so none may have been refused)
    spans = [iv.get("span", 1) for r in reports for iv in r["intervals"]]
    if dr == 3:
        assert max(len(r["intervals"]) for r in reports) >= 3
    else:
        assert max(spans) >= 16 and vn.node.health.raised >= {"queue_merged"} or any(
            "queue_merged" in r["status"]["health"] for r in reports)


def test_configuration_downlink_is_applied_acknowledged_and_persisted():
    header, lines, _ = site(minutes=6)
    fs = MemFS()
    box = []
    vn = VirtualNode(node_file(header), lines, fs=fs, downlinks=lambda dev: box.pop(0) if box else None)
    good = vc.encode_downlink({"config_version": 7, "interval_s": 120, "min_count": 10,
                               "lines": [{"index": 1, "a_mm": [-2000, 3000], "b_mm": [2000, 3000]}]},
                              dev_eui=bytes.fromhex(DEV), key=TAG_KEY)
    box.append((2, good))
    vn.run_for(70000)                 # the first uplink went at 60 s; the downlink came in its RX window
    assert vn.node.pending["config_version"] == 7                 # in force from the next interval
    assert vn.node.in_force["config_version"] == 0
    vn.run_for(5 * 60000)
    reports = [decode(u) for u in vn.uplinks]
    versions = [r["status"]["config_version"] for r in reports]
    assert versions[0] == 0 and versions[-1] == 7
    late = [r for r in reports if r["status"]["config_version"] == 7 and r["interval_s"] == 120]
    assert late and all(len(r["intervals"][0]["lines"]) == 2 for r in late)
    # it survives a restart
    vn.restart("soft")
    assert vn.node.in_force["config_version"] == 7 and vn.node.in_force["interval_s"] == 120


@pytest.mark.parametrize("change, reason", [
    ({"config_version": 9, "lines": [{"index": 0, "a_mm": [0, 0], "b_mm": [100, 0]}]}, "shorter than"),
    ({"config_version": 9, "lines": [{"index": 3, "a_mm": [0, 0], "b_mm": [2000, 0]}]}, "contiguous"),
    ({"config_version": 9, "zones": [{"index": 0, "polygon_mm": [[0, 0], [2000, 2000], [2000, 0], [0, 2000]]}]},
     "not simple"),
    ({"config_version": 9, "sensor_mode": "tof_8x8"}, "does not fit"),
    ({"config_version": 9, "zones": [{"index": 0, "delete": True}], "lines": [{"index": 0, "delete": True}]},
     "measure nothing"),
])
def test_bad_configuration_is_rejected_with_a_flag_and_changes_nothing(change, reason):
    header, lines, _ = site(minutes=3)
    box = [(2, vc.encode_downlink(change, dev_eui=bytes.fromhex(DEV), key=TAG_KEY))]
    vn = VirtualNode(node_file(header), lines, fs=MemFS(), downlinks=lambda dev: box.pop(0) if box else None)
    vn.run_for(3 * 60000 + 20000)
    assert any(reason in r for r in vn.node.rejected), vn.node.rejected
    reports = [decode(u) for u in vn.uplinks]
    assert any("config_rejected" in r["status"]["health"] for r in reports[1:])
    assert all(r["status"]["config_version"] == 0 for r in reports)
    assert vn.node.config.current["config_version"] == 0


def test_a_repeated_downlink_is_applied_once_without_a_flag():
    header, lines, _ = site(minutes=4)
    frame = vc.encode_downlink({"config_version": 3, "min_count": 7}, dev_eui=bytes.fromhex(DEV), key=TAG_KEY)
    box = [(2, frame), (2, frame)]
    vn = VirtualNode(node_file(header), lines, fs=MemFS(), downlinks=lambda dev: box.pop(0) if box else None)
    vn.run_for(4 * 60000 + 20000)
    reports = [decode(u) for u in vn.uplinks]
    assert vn.node.rejected == [] and not any("config_rejected" in r["status"]["health"] for r in reports)
    assert reports[-1]["status"]["config_version"] == 3 and vn.node.release.k == 7


def test_forged_downlink_is_rejected():
    header, lines, _ = site(minutes=3)
    forged = vc.encode_downlink({"config_version": 5, "interval_s": 60}, dev_eui=bytes.fromhex(DEV), key=bytes(32))
    box = [(2, forged)]
    vn = VirtualNode(node_file(header), lines, fs=MemFS(), downlinks=lambda dev: box.pop(0) if box else None)
    vn.run_for(3 * 60000)
    assert vn.node.rejected == ["authenticity tag does not match"]


def test_silent_sensor_is_flagged_and_reinitialised():
    header, lines, _ = site(minutes=2)
    vn = VirtualNode(node_file(header), lines, fs=MemFS())
    calls = []
    vn.sensor.reinit = lambda: calls.append(vn.clock.elapsed_ms)
    vn.run_for(4 * 60000 + 10000)                 # the recording ends after 2 minutes
    flags = [decode(u)["status"]["health"] for u in vn.uplinks]
    assert "sensor_silent" in flags[-1] and "sensor_restarted" in flags[-1]
    assert "sensor_silent" not in flags[0]
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert len(calls) >= 3 and all(b == 2 * a for a, b in zip(gaps, gaps[1:]))     # doubling backoff


def test_modem_trouble_busy_and_mac_commands_lose_nothing():
    """Failed joins, a busy modem, and MAC commands that take room in FOpts
    (so a full batch no longer fits and the modem sends them alone): every
    interval still arrives once, in order."""
    header, lines, _ = site(minutes=10)
    vn = VirtualNode(node_file(header), lines, fs=MemFS(), loop=True,
                     session_kw={"join_failures": 2, "busy_rate": 0.2, "mac_rate": 0.5, "dr": 2, "seed": 5})
    vn.run_for(3 * 3600000, step_ms=100)
    reports = [decode(u) for u in vn.uplinks]
    seqs = covered(reports)
    assert seqs == list(range(len(seqs))) and len(seqs) + sum(r[1] for r in vn.node.queue.records) >= 179
    assert "modem_trouble" in reports[0]["status"]["health"]      # the failed joins
    # three join requests on air; an attempt the module refused for its
    # duty-cycle wait (Restricted_Wait, AT_BUSY_ERROR) is not one of them
    assert vn.session.joins == 3 and vn.node.modem.join_attempts >= 3
    assert vn.session.mac_only_uplinks > 0 and accounted_for(vn, reports)


MICROPYTHON_SCRIPT = """
import json
from vistelse_node.clock import SimClock
from vistelse_node.node import Node
from vistelse_node.sensors.replay import ReplaySensor
from vistelse_node.modem.rak3172 import Rak3172
from vistelse_node import flashfs
from emulators import session, rak3172
import os
os.mkdir('/flash/state')
clock = SimClock()
nf = json.loads(open('/flash/node.json').read())
s = session.Session(lambda: clock.elapsed_ms, dev_eui=nf['dev_eui'])
m = Rak3172(rak3172.Rak3172(s), clock)
m.setup(nf['dev_eui'], nf['join_eui'], nf['app_key'])
node = Node(nf, ReplaySensor(open('/flash/scene.rec.jsonl'), clock), m, clock, flashfs.FlashFS('/flash/state'),
            reset_cause='power_on')
while clock.elapsed_ms < %d:
    node.step()
    clock.advance(20)
for up in s.uplinks:
    print(up['data'].hex())
"""


def test_node_runs_under_micropython(micropython, tmp_path):
    header, lines, _ = site(minutes=3)
    (tmp_path / "scene.rec.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "node.json").write_text(json.dumps(node_file(header)))
    emulators = os.path.join(ROOT, "tools", "vistelse_tools", "emulators")
    run_ms = 3 * 60000 + 20000
    out = micropython(MICROPYTHON_SCRIPT % run_ms,
                      files=BOARD_FILES + ((emulators, "/flash/lib/emulators"),
                                           (str(tmp_path / "scene.rec.jsonl"), "/flash/scene.rec.jsonl"),
                                           (str(tmp_path / "node.json"), "/flash/node.json")),
                      timeout=600)
    mp_frames = [bytes.fromhex(h) for h in out.split()]
    # the same node on CPython sends byte-identical uplinks
    vn = VirtualNode(node_file(header), lines, fs=MemFS(), battery_mv=0)
    vn.run_for(run_ms)
    assert [u["data"] for u in vn.uplinks] == mp_frames
    reports = [decode(u) for u in vn.uplinks]
    assert covered(reports) == [0, 1, 2]
    # ... and they carry the pipeline's aggregates: `vistelse replay` of the
    # same recording (the pipeline alone, frame by frame at recorded times)
    from vistelse_tools.replay import predict
    pred = predict(str(tmp_path / "scene.rec.jsonl"), min_count=3)["intervals"]
    for k, (r, p) in enumerate(zip(reports, pred)):
        zone, line = r["intervals"][0]["zones"][0], r["intervals"][0]["lines"][0]
        want = p["zones"]["square"]
        assert (zone["visits"], zone["person_s"], zone["max_occupancy"]) == (
            want["visits"], want["person_s"], want["max_occupancy"]), k
        assert {"in": line["in"], "out": line["out"]} == p["lines"]["path"], k
        if k < len(pred) - 1:      # replay ends visits still going at the recording's end; the node does not
            assert zone["dwell_hist"] == want.get("dwell_hist"), k


def test_reports_go_unconfirmed_and_what_was_lost_stays_queued():
    """Reports go unconfirmed (a confirmation costs a downlink per uplink);
    the network loses 30 % of them while the modem reports success, and a
    TX timeout now and then sends nothing. Without a receipt every interval
    either arrived or is still in the queue, sent ones included."""
    header, lines, _ = site(minutes=10)
    vn = VirtualNode(node_file(header), lines, fs=MemFS(), loop=True,
                     session_kw={"loss_rate": 0.3, "tx_fail_rate": 0.15, "seed": 7})
    vn.run_for(90 * 60000, step_ms=100)
    assert vn.uplinks and not any(u["confirmed"] for u in vn.uplinks)
    assert vn.session.lost                                  # some went on air and never arrived
    arrived = set(covered([decode(u) for u in vn.uplinks]))
    queue = vn.node.queue
    held = set(s for r in queue.records for s in range(r[0], r[0] + r[1]))
    assert held == set(range(queue.next_seq))                # nothing freed without a receipt
    assert arrived and held - arrived                        # some arrived, some never did
    assert queue.sent and not queue.dropped                  # sent ones wait for their receipt


def _hung_tof_node(feeds_between_steps):
    """A ToF node whose sensor goes silent and hangs: stop_ranging() spends
    its 5 s timeout (qwiic_vl53l5cx stop_ranging: 500 polls x 10 ms) and
    begin() 10.5 s (the 86 KB firmware upload on a slow 100 kHz bus and its
    1 s sleeps)."""
    from test_sensor_drivers import FakeQwiicVL53L5CX
    from vistelse_node.sensors.vl53l5cx import VL53L5CX

    class Hung(FakeQwiicVL53L5CX):
        def stop_ranging(self):
            self.clock.advance(5000)
            return FakeQwiicVL53L5CX.stop_ranging(self)

        def begin(self):
            self.clock.advance(10500)
            return FakeQwiicVL53L5CX.begin(self)

    class NoFeed(VL53L5CX):
        feed = property(lambda self: None, lambda self, v: None)

    header, lines, _ = site(minutes=1, kind="tof")
    frames = [(json.loads(l)["mm"], json.loads(l)["status"]) for l in lines[1:40]]

    def make(clock):
        cls = VL53L5CX if feeds_between_steps else NoFeed
        dev = cls(Hung(frames, clock), clock)
        dev.setup()
        return dev
    vn = VirtualNode(node_file(header), lines, fs=MemFS(), sensor=make)
    vn.run_for(5 * 60000, step_ms=50)
    return vn


def test_a_hung_tof_reinitialisation_is_fed_and_the_watchdog_is_real():
    vn = _hung_tof_node(True)
    assert vn.sensor.reinits >= 1 and vn.watchdog_resets == 0
    assert vn.wdt.longest_ms <= 10600                  # the longest step (begin), inside 15 s
    # the same re-initialisation without feeds between its steps: 15.5 s in one turn
    vn = _hung_tof_node(False)
    assert vn.watchdog_resets >= 1


def test_an_orientation_downlink_turns_the_tof_grid_and_in_becomes_out():
    """A ToF node installed with the orientation of its recording counts
    everyone walking north as *in*; a configuration downlink with the
    orientation a walk test found (a half turn here, docs/evaluation.md)
    turns the grid from the next interval, and the same walkers count
    *out*. The orientation is kept on flash like the rest of the
    configuration."""
    from test_sensor_drivers import FakeQwiicVL53L5CX
    from vistelse_node.sensors.vl53l5cx import VL53L5CX

    _, header = simulate.passage_site(1, seed=1)
    scene = simulate.Scene(7 * 60)
    t = 3.0
    while t < 7 * 60 - 10:
        scene.add(simulate.walker((0, -2000), (0, 2000), t))      # northwards: from the right of a->b, in
        t += 7.0
    frames = [(f["mm"], f["status"]) for f in simulate.vl53l5cx_frames(scene, header, seed=1)]
    lines = [json.dumps(header)]
    sensors = []

    def make(clock):
        dev = VL53L5CX(FakeQwiicVL53L5CX(frames, clock), clock)
        dev.setup()
        sensors.append(dev)
        return dev
    turn = vc.encode_downlink({"config_version": 2, "orientation": {"rotate": 2, "mirror": False}},
                              dev_eui=bytes.fromhex(DEV), key=TAG_KEY)
    box = [(2, turn)]
    vn = VirtualNode(node_file(header), lines, fs=MemFS(), sensor=make,
                     downlinks=lambda dev: box.pop(0) if box else None)
    assert vn.node.in_force["orientation"] == {"rotate": 0, "mirror": False}     # the node file's mount
    vn.run_for(7 * 60000, step_ms=50)
    assert vn.node.in_force["orientation"] == {"rotate": 2, "mirror": False}
    assert sensors[-1].rotate == 2
    counts = {}
    for r in (decode(u) for u in vn.uplinks):
        for k, iv in enumerate(r["intervals"]):
            counts[r["seq"] + k] = (iv["lines"][0]["in"], iv["lines"][0]["out"])
    before = [counts[s] for s in (0,)]                 # the downlink came after the first uplink (60 s)
    after = [counts[s] for s in range(2, 6)]           # in force from the interval after it
    assert all(i >= 5 and o == 0 for i, o in before), counts
    assert all(o >= 5 and i == 0 for i, o in after), counts
    vn.restart("soft")
    assert vn.node.in_force["orientation"] == {"rotate": 2, "mirror": False} and sensors[-1].rotate == 2


def test_an_orientation_downlink_to_a_radar_node_is_rejected():
    header, lines, _ = site(minutes=3)
    box = [(2, vc.encode_downlink({"config_version": 4, "orientation": {"rotate": 1, "mirror": True}},
                                  dev_eui=bytes.fromhex(DEV), key=TAG_KEY))]
    vn = VirtualNode(node_file(header), lines, fs=MemFS(), downlinks=lambda dev: box.pop(0) if box else None)
    vn.run_for(3 * 60000 + 20000)
    assert any("ToF sensor" in r for r in vn.node.rejected), vn.node.rejected
    assert vn.node.config.current["config_version"] == 0 and vn.node.in_force["orientation"] is None
