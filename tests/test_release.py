"""The node's release stage (firmware/vistelse_node/release.py) record by
record: nothing released describes fewer than k people, sums stay exact,
cumulative totals move only at record ends, nothing is lost or doubled
across resets; the same checks under MicroPython."""
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from node_fakes import MemFS
from vistelse_node import config as node_config
from vistelse_node import queue as report_queue
from vistelse_node import release

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One base interval: people first seen, then counts that fit them (a person
# makes one visit at most here; line crossings and dwell ends may belong to
# people already there).
interval_strategy = st.tuples(st.integers(0, 4), st.integers(0, 2), st.integers(0, 600), st.integers(0, 2),
                              st.integers(0, 2), st.integers(0, 2))


def make_interval(people, carried, person_s, ends, cross_in, cross_out):
    hist = [0] * 7
    hist[min(6, person_s // 100)] = ends
    return {"zones": [{"visits": people, "person_s": person_s if people + carried else 0,
                       "max_occupancy": min(255, people + carried),
                       "dwell_hist": {"counts": hist} if ends else None}],
            "lines": [{"in": cross_in if people + carried else 0, "out": cross_out if people + carried else 0}],
            "people": people}


def check_stream(records, taken, k, dropped_people=None):
    """The release stage's promises over one stream. `taken` is the list of
    (people, interval) given to it in order; records what it released."""
    seq = records[0][report_queue.SEQ] if records else 0
    tot_in = tot_out = 0
    i = 0
    for rec in records:
        assert rec[report_queue.SEQ] == seq, "records are consecutive"
        span = rec[report_queue.SPAN]
        parts = taken[i:i + span]
        assert len(parts) == span
        i += span
        seq += span
        zone = rec[report_queue.ZONES][0]
        line = rec[report_queue.LINES][0]
        counts = [zone[0], zone[1], zone[2], line[0], line[1]] + (zone[3] or [])
        people = sum(p for p, _ in parts)
        if any(counts):
            # released: at least k people first seen in it, and the sums are exact
            assert people >= k, "record %r describes %d people (k=%d)" % (rec, people, k)
            assert zone[0] == sum(iv["zones"][0]["visits"] for _, iv in parts)
            assert zone[1] == sum(iv["zones"][0]["person_s"] for _, iv in parts)
            assert zone[2] == max(iv["zones"][0]["max_occupancy"] for _, iv in parts)
            assert line[0] == sum(iv["lines"][0]["in"] for _, iv in parts)
        else:
            assert people < k or all(not any(iv["zones"][0].values()) for _, iv in parts)
        tot_in += line[0]
        tot_out += line[1]
        # totals only ever carry released crossings
        assert (line[2], line[3]) == (tot_in, tot_out) == tuple(rec[report_queue.TOT][:2])
    return i


@settings(max_examples=60, deadline=None)
@given(stream=st.lists(interval_strategy, min_size=1, max_size=60), k=st.integers(3, 6),
       restart_at=st.integers(0, 60))
def test_no_record_describes_fewer_than_k_people(stream, k, restart_at):
    fs = MemFS()
    q = report_queue.Queue(fs)
    rel = release.Release(fs, k)
    rel.resume(q.next_seq, q.tot)
    taken = []
    for n, args in enumerate(stream):
        if n == restart_at:                # a reset: the held record comes back from flash
            q = report_queue.Queue(fs)
            rel = release.Release(fs, k)
            rel.resume(q.next_seq, q.tot)
        iv = make_interval(*args)
        taken.append((iv["people"], json.loads(json.dumps(iv))))
        for rec in rel.take(iv, 60, q.next_seq):
            q.append_record(rec)
    used = check_stream(q.records, taken, k)
    # what is not yet released is held, whole, and nothing else
    held = rel.held
    assert used + (held[report_queue.SPAN] if held else 0) == len(stream)
    assert held is None or rel.people < k


def test_a_quiet_night_is_one_record_and_a_busy_hour_is_not_merged():
    fs = MemFS()
    q = report_queue.Queue(fs)
    rel = release.Release(fs, 5)
    rel.resume(0, q.tot)
    stream = [make_interval(1, 0, 40, 1, 1, 0)] * 4 + [make_interval(0, 0, 0, 0, 0, 0)] * 3 + \
        [make_interval(1, 0, 30, 1, 0, 1)] + [make_interval(6, 0, 300, 5, 3, 3)] * 3
    for iv in stream:
        for rec in rel.take(json.loads(json.dumps(iv)), 300, q.next_seq):
            q.append_record(rec)
    # the fifth person arrives in the 8th interval: 8 intervals in one record
    assert [r[report_queue.SPAN] for r in q.records] == [8, 1, 1, 1]
    night = q.records[0]
    assert night[report_queue.ZONES][0][:3] == [5, 4 * 40 + 30, 1]
    assert sum(night[report_queue.ZONES][0][3]) == 5
    assert night[report_queue.LINES][0] == [4, 1, 4, 1]
    assert q.records[1][report_queue.LINES][0] == [3, 3, 7, 4]


def test_an_empty_interval_is_released_at_once_and_a_held_one_survives_a_reset():
    fs = MemFS()
    q = report_queue.Queue(fs)
    rel = release.Release(fs, 3)
    rel.resume(0, q.tot)
    assert [r[report_queue.SPAN] for r in rel.take(make_interval(0, 0, 0, 0, 0, 0), 60, 0)] == [1]
    q.append_record(rel.take(make_interval(0, 0, 0, 0, 0, 0), 60, 0)[0])
    held = make_interval(2, 0, 100, 0, 1, 0)
    held["present"] = 1                    # one of its two people still there at its close
    assert rel.take(held, 60, q.next_seq) == []
    # reset: the held record (2 people, one crossing) is on flash
    q2 = report_queue.Queue(fs)
    rel2 = release.Release(fs, 3)
    rel2.resume(q2.next_seq, q2.tot)
    assert rel2.held[report_queue.SPAN] == 1 and rel2.people == 2
    # the one who was there may be seen again, however late (a standing
    # person the radar dropped walks on): the first person after the start
    # does not count, whichever interval they come in
    assert rel2.take(make_interval(0, 0, 0, 0, 0, 0), 60, q2.next_seq) == []
    assert rel2.take(make_interval(1, 0, 40, 0, 0, 0), 60, q2.next_seq) == []
    out = rel2.take(make_interval(1, 0, 10, 0, 0, 0), 60, q2.next_seq)
    assert [(r[report_queue.SEQ], r[report_queue.SPAN]) for r in out] == [(1, 4)]
    assert out[0][report_queue.LINES][0] == [1, 0, 1, 0]
    # a power cut after the queue wrote it but before the release stage forgot it
    q2.append_record(out[0])
    rel3 = release.Release(fs, 3)
    rel3.held, rel3.people, rel3.tot0 = out[0], 3, [0] * 8
    rel3.resume(q2.next_seq, q2.tot)
    assert rel3.held is None and rel3.tot == q2.tot


def test_a_day_without_k_people_is_given_up_without_a_number_about_them():
    fs = MemFS()
    rel = release.Release(fs, 5)
    rel.resume(0, [0] * 8)
    out = []
    for _ in range(24):
        out += rel.take(make_interval(0, 0, 0, 0, 0, 0), 3600, 0)
    assert [r[report_queue.SPAN] for r in out] == [1] * 24
    out = []
    seq = 24
    for h in range(25):
        got = rel.take(make_interval(1 if h == 0 else 0, 1 if h else 0, 3600, 0, 1 if h == 0 else 0, 0), 3600, seq)
        out += got
        seq += sum(r[report_queue.SPAN] for r in got)
    assert [r[report_queue.SPAN] for r in out] == [24] and rel.held[report_queue.SPAN] == 1
    given_up = out[0]
    assert given_up[report_queue.ZONES][0] == [0, 0, 0, None]
    assert given_up[report_queue.LINES][0] == [0, 0, 0, 0]              # the crossing is not in the totals either
    assert rel.tot[:2] == [0, 0]


@pytest.mark.parametrize("k, ok", [(0, False), (2, False), (3, True), (5, True), (50, True), (51, False)])
def test_min_count_by_downlink_stays_within_safe_bounds(k, ok):
    node_file = {"sensor": "ld2450", "config": {"lines": [[[0, 0], [0, 1000]]]}}
    cfg = node_config.factory(node_file)
    assert cfg["min_count"] == release.K_DEFAULT == 5
    if ok:
        assert node_config.merged(cfg, "ld2450", {"config_version": 1, "min_count": k})["min_count"] == k
    else:
        with pytest.raises(node_config.ConfigError, match="min_count"):
            node_config.merged(cfg, "ld2450", {"config_version": 1, "min_count": k})
    assert release.clamp_k(k) == min(max(k, release.K_MIN), release.K_MAX)


# The same stream and checks under MicroPython: a deterministic stream from
# an LCG, a reset in the middle, the records printed as JSON.
STREAM_SCRIPT = r"""
import json
from vistelse_node import flashfs, queue as report_queue, release
import os
try:
    os.mkdir(%(dir)r)
except OSError:
    pass
fs = flashfs.FlashFS(%(dir)r)
state = [12345]
def rnd(n):
    state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return state[0] %% n
q = report_queue.Queue(fs)
rel = release.Release(fs, %(k)d)
rel.resume(q.next_seq, q.tot)
taken = []
for n in range(200):
    if n == 97:
        q = report_queue.Queue(fs)
        rel = release.Release(fs, %(k)d)
        rel.resume(q.next_seq, q.tot)
    people, carried = rnd(3) * rnd(2), rnd(2)
    hist = [0] * 7
    ends = rnd(2)
    hist[rnd(7)] = ends
    iv = {"zones": [{"visits": people, "person_s": rnd(500) if people + carried else 0,
                     "max_occupancy": people + carried, "dwell_hist": {"counts": hist} if ends else None}],
          "lines": [{"in": rnd(2) if people + carried else 0, "out": 0}], "people": people}
    taken.append([people, json.loads(json.dumps(iv))])
    for rec in rel.take(iv, 60, q.next_seq):
        q.append_record(rec)
print(json.dumps({"records": q.records, "taken": taken}))
"""


def run_stream_cpython(tmp_path, k):
    script = STREAM_SCRIPT % {"dir": str(tmp_path / "flash"), "k": k}
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "firmware"))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          check=True).stdout


def test_release_on_micropython_matches_cpython_and_keeps_k(micropython, tmp_path):
    k = 4
    mp = json.loads(micropython(STREAM_SCRIPT % {"dir": "/flash/rel", "k": k}).strip())
    cp = json.loads(run_stream_cpython(tmp_path, k))
    assert mp == cp
    taken = [(p, iv) for p, iv in mp["taken"]]
    used = check_stream(mp["records"], taken, k)
    assert used > 150 and any(r[report_queue.SPAN] > 1 for r in mp["records"])
