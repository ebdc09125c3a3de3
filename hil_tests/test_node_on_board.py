"""The node on the board: a scripted scene through the node's replay input,
uplinks captured at the modem (the emulator on the board's modem UART),
decoded with the contract codec; a configuration downlink applied and
acknowledged; the queue kept across a reset.

These run in real time (the node's intervals are at least 60 s): about
four minutes in all."""
import json
import os

import pytest

from vistelse_tools import simulate

STATE_FILES = ("queue.a", "queue.b", "config.0", "config.1")


@pytest.fixture(scope="module")
def scene(tmp_path_factory, deployed):
    """Two minutes on the square, copied to the board's flash: busy enough
    that each minute describes at least k = 3 people (the node file's
    min_count), so each is released at its end, not held."""
    sc, header = simulate.square_site(2, seed=11, interval_s=60, mean_gap_s=6.0)
    frames, truth = simulate.simulate(sc, header, seed=11)
    path = tmp_path_factory.mktemp("scene") / "scene.rec.jsonl"
    with open(path, "w") as f:
        f.write(json.dumps(header) + "\n")
        for fr in frames:
            f.write(json.dumps(fr) + "\n")
    deployed.mpremote("fs", "cp", str(path), ":scene.rec.jsonl")
    return truth


def fresh_state(board):
    board.run("import os\nfor n in %r:\n    try:\n        os.remove(n)\n    except OSError:\n        pass" % (STATE_FILES,))


def run_node(board, ms):
    return board.run("import vistelse_node.app as app\nn = app.start(replay='scene.rec.jsonl', run_ms=%d)\n"
                     "print('QUEUE', len(n.queue), n.queue.next_seq)" % ms, timeout=ms // 1000 + 120)


def test_scene_counts_and_a_configuration_downlink(deployed, network, scene):
    import vistelse_codec as vc
    from conftest import DEV_EUI, TAG_KEY
    fresh_state(deployed)
    del network.uplinks[:]
    network.downlinks.append((2, vc.encode_downlink({"config_version": 5, "min_count": 4},
                                                    dev_eui=bytes.fromhex(DEV_EUI), key=TAG_KEY)))
    out = run_node(deployed, 128000)
    reports = network.decoded()
    assert [r["seq"] for r in reports] == [0, 1], out
    first, second = reports
    assert first["status"]["config_version"] == 0 and first["status"]["reset_cause"] is not None
    assert second["status"]["config_version"] == 5                      # applied at the interval's end
    assert first["status"]["battery_mv"] == 3600
    truth_in = sum(iv["lines"]["path"]["in"] for iv in scene["intervals"])
    truth_out = sum(iv["lines"]["path"]["out"] for iv in scene["intervals"])
    totals = second["intervals"][-1]["lines"][0]
    assert abs(totals["total_in"] - truth_in) <= max(2, truth_in // 4), (totals, truth_in)
    assert abs(totals["total_out"] - truth_out) <= max(2, truth_out // 4), (totals, truth_out)
    visits = sum(r["intervals"][0]["zones"][0]["visits"] for r in reports)
    truth_visits = sum(iv["zones"]["square"]["visits"] for iv in scene["intervals"])
    assert abs(visits - truth_visits) <= max(3, truth_visits // 4)
    # what went over the radio is aggregates only: two small uplinks
    assert all(len(u["data"]) <= 60 for u in network.uplinks)


def test_queue_survives_a_reset(deployed, network, scene):
    fresh_state(deployed)
    del network.uplinks[:]
    network.session.joined = False                                       # the network is away:
    network.session.join_failures = network.session.joins + 1000        # no join succeeds
    out = run_node(deployed, 65000)
    assert network.uplinks == [] and "QUEUE 1 1" in out, out
    if deployed.virtual is not None:
        deployed.virtual.power_cycle()
    else:
        deployed.mpremote("reset")
    network.session.join_failures = 0
    run_node(deployed, 20000)
    reports = network.decoded()
    assert [r["seq"] for r in reports] == [0]
    assert reports[0]["age_s"] is None                                   # queued before the reset
    # mpremote soft-resets the board as it connects, so that is the cause seen
    assert reports[0]["status"]["reset_cause"] in ("power_on", "soft", "hard")
