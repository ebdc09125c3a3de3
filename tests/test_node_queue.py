"""The persistent queue: power cut at every write step loses nothing, duplicates nothing."""
import pytest

from node_fakes import FailingFS, MemFS, PowerCut
from vistelse_node import flashfs, queue as q


def interval(i, zones=1, lines=1, hist=True):
    return {
        "zones": [{"visits": i + 1, "person_s": 10 * (i + 1), "max_occupancy": i % 5,
                   "dwell_hist": {"edges_s": q.DWELL_EDGES_S, "counts": [1, 0, 0, 0, 0, 0, i]} if hist else None}
                  for _ in range(zones)],
        "lines": [{"in": 1, "out": 2, "total_in": 1 * (i + 1), "total_out": 2 * (i + 1)} for _ in range(lines)],
    }


def tot_after(i):
    return [i + 1, 2 * (i + 1), 0, 0, 0, 0, 0, 0]


class Journal:
    """What the code above the queue knows was committed."""

    def __init__(self):
        self.appended = {}       # seq -> index i of the interval
        self.acked_upto = 0      # every seq below this was acked (ack returned)
        self.ack_in_flight = None
        self.append_in_flight = None


def append_journalled(queue, journal, i):
    """Append interval i, the journal knowing it is in flight until the queue returns its seq."""
    journal.append_in_flight = i
    seq = queue.append(interval(i), 60, tot_after(i))
    journal.append_in_flight = None
    journal.appended[seq] = i
    return seq


def run_scenario(fs, journal, n=14, max_records=4, compact_bytes=700):
    queue = q.Queue(fs, max_records=max_records, compact_bytes=compact_bytes)
    start = queue.next_seq
    for k in range(n):
        i = start + k
        assert append_journalled(queue, journal, i) == i
        if k % 4 == 3:
            batch = queue.batch(3)
            upto = batch[-1][q.SEQ] + batch[-1][q.SPAN]
            journal.ack_in_flight = upto
            queue.ack(upto)
            journal.ack_in_flight = None
            journal.acked_upto = upto
    return queue


def check(queue, journal):
    covered = []
    for rec in queue.records:
        seqs = list(range(rec[q.SEQ], rec[q.SEQ] + rec[q.SPAN]))
        covered.extend(seqs)
        # merges are lossless: every count is the sum of the originals
        originals = [journal.appended.get(s, s) for s in seqs]
        assert rec[q.ZONES][0][0] == sum(i + 1 for i in originals)
        assert rec[q.ZONES][0][1] == sum(10 * (i + 1) for i in originals)
        assert rec[q.LINES][0][:2] == [len(seqs), 2 * len(seqs)]
        assert rec[q.LINES][0][2:] == [originals[-1] + 1, 2 * (originals[-1] + 1)]
    assert covered == sorted(set(covered)), "a sequence number is held twice"
    assert covered == list(range(covered[0], covered[0] + len(covered))) if covered else True
    live = set(covered)
    for seq in journal.appended:
        if seq >= journal.acked_upto and (journal.ack_in_flight is None or seq >= journal.ack_in_flight):
            assert seq in live, "interval %d was lost" % seq
        if seq < journal.acked_upto:
            assert seq not in live, "interval %d came back after its ack" % seq
    newest = max(list(journal.appended) + [-1])
    assert queue.next_seq >= newest + 1
    if journal.append_in_flight is not None and journal.append_in_flight in live:
        newest = journal.append_in_flight
    assert queue.next_seq in (newest + 1, newest + 2)
    if newest >= 0 and queue.next_seq == newest + 1:
        assert queue.tot == tot_after(newest)


def count_steps():
    fs = MemFS()
    run_scenario(fs, Journal())
    return fs.steps


def test_scenario_without_faults():
    fs = MemFS()
    journal = Journal()
    queue = run_scenario(fs, journal)
    check(queue, journal)
    assert queue.merged
    again = q.Queue(fs.after_power_cut(), max_records=4, compact_bytes=700)
    assert again.records == queue.records and again.next_seq == queue.next_seq and again.tot == queue.tot


@pytest.mark.parametrize("seed", [1, 2])
def test_power_cut_at_every_write_step(seed):
    total = count_steps()
    assert total > 20                 # appends, acks, merges and compactions (one write each)
    for cut in range(1, total + 1):
        fs = MemFS(cut_at=cut, seed=seed * 1000 + cut)
        journal = Journal()
        with pytest.raises(PowerCut):
            run_scenario(fs, journal)
        flash = fs.after_power_cut()
        queue = q.Queue(flash, max_records=4, compact_bytes=700)
        check(queue, journal)
        # it goes on from there, and survives a second cut during the recovery's own writes
        journal.append_in_flight = None
        journal.ack_in_flight = None
        queue = run_scenario(flash, journal, n=6)
        check(queue, journal)
        check(q.Queue(flash.after_power_cut(), max_records=4, compact_bytes=700), journal)


def test_second_cut_during_recovery():
    total = count_steps()
    for cut in range(5, total, 7):
        fs = MemFS(cut_at=cut, seed=cut)
        journal = Journal()
        with pytest.raises(PowerCut):
            run_scenario(fs, journal)
        for second in range(1, 12):
            flash = MemFS(fs.files, cut_at=second, seed=second)
            j2 = Journal()
            j2.appended = dict(journal.appended)
            j2.acked_upto = journal.acked_upto
            j2.ack_in_flight = journal.ack_in_flight
            j2.append_in_flight = journal.append_in_flight
            try:
                run_scenario(flash, j2, n=3)
            except PowerCut:
                pass
            check(q.Queue(flash.after_power_cut(), max_records=4, compact_bytes=700), j2)


def test_merge_policy_is_binary_and_lossless():
    fs = MemFS()
    queue = q.Queue(fs, max_records=6, compact_bytes=100000)
    for i in range(200):
        queue.append(interval(i), 300, tot_after(i))
    spans = [r[q.SPAN] for r in queue.records]
    assert sum(spans) == 200 and len(spans) <= 6
    assert spans == sorted(spans, reverse=True), spans      # oldest coarsest
    assert sum(r[q.ZONES][0][0] for r in queue.records) == sum(range(1, 201))
    assert queue.records[-1][q.LINES][0][2:] == [200, 400]
    # max_occupancy is the max, histograms add up
    assert queue.records[0][q.ZONES][0][2] == 4
    assert sum(r[q.ZONES][0][3][6] for r in queue.records) == sum(range(200))


def test_withheld_histogram_stays_withheld_and_shapes_do_not_mix():
    a = q.record_from_interval(0, interval(0, hist=False), 60, tot_after(0))
    b = q.record_from_interval(1, interval(1), 60, tot_after(1))
    m = q.merge(a, b)
    assert m[q.ZONES][0][3] is None and m[q.SPAN] == 2
    c = q.record_from_interval(2, interval(2, zones=2), 60, tot_after(2))
    assert q.merge(b, c) is None
    d = q.record_from_interval(2, interval(2), 120, tot_after(2))
    assert q.merge(b, d) is None
    big = q.record_from_interval(2, interval(40000), 60, tot_after(2))
    big[q.ZONES][0][0] = 40000
    b2 = q.record_from_interval(1, interval(1), 60, tot_after(1))
    b2[q.ZONES][0][0] = 40000
    assert q.merge(b2, big) is None        # 80000 visits would not fit a uint16


def test_unmergeable_records_grow_past_the_bound_rather_than_drop():
    fs = MemFS()
    queue = q.Queue(fs, max_records=3, compact_bytes=100000)
    for i in range(6):
        queue.append(interval(i, zones=i % 2 + 1), 60 * (i + 1), tot_after(i))
    assert len(queue) == 6 and not queue.merged


def test_batch_takes_oldest_records_of_one_shape():
    queue = q.Queue(MemFS(), max_records=50)
    for i in range(3):
        queue.append(interval(i), 60, tot_after(i))
    queue.append(interval(3, zones=2), 60, tot_after(3))
    assert [r[q.SEQ] for r in queue.batch(10)] == [0, 1, 2]
    assert [r[q.SEQ] for r in queue.batch(2)] == [0, 1]
    queue.ack(3)
    assert [r[q.SEQ] for r in queue.batch(10)] == [3]


def test_seq_and_totals_survive_when_the_queue_is_empty():
    fs = MemFS()
    queue = q.Queue(fs, compact_bytes=300)
    for i in range(10):
        queue.append(interval(i), 60, tot_after(i))
        queue.ack(i + 1)
    assert len(queue) == 0
    again = q.Queue(fs.after_power_cut(), compact_bytes=300)
    assert again.next_seq == 10 and again.tot == tot_after(9) and len(again) == 0


def test_flash_full_keeps_records_in_ram_and_writes_them_later():
    fs = FailingFS()
    queue = q.Queue(fs)
    queue.append(interval(0), 60, tot_after(0))
    fs.full = True
    queue.append(interval(1), 60, tot_after(1))
    assert queue.dirty and len(queue) == 2
    fs.full = False
    queue.append(interval(2), 60, tot_after(2))
    assert not queue.dirty
    again = q.Queue(fs.after_power_cut())
    assert [r[q.SEQ] for r in again.records] == [0, 1, 2]


def test_corrupt_byte_in_the_middle_keeps_everything_before_it():
    fs = MemFS()
    queue = q.Queue(fs, compact_bytes=100000)
    for i in range(5):
        queue.append(interval(i), 60, tot_after(i))
    name = queue.files[queue.cur]
    data = fs.files[name]
    entries, _ = flashfs.entries(bytes(data))
    # entries: H S C I0 I1 I2 I3 I4; flip a byte inside I2
    pos = 0
    for k, (kind, payload) in enumerate(entries):
        if k == 5:
            data[pos + 6] ^= 0xFF
            break
        pos += 8 + len(payload)
    again = q.Queue(fs.after_power_cut(), compact_bytes=100000)
    assert [r[q.SEQ] for r in again.records] == [0, 1]


def test_crc_matches_zlib():
    import zlib
    assert flashfs.crc32(b"vistelse") == zlib.crc32(b"vistelse")
    flashfs_crc = flashfs._crc32
    try:
        flashfs._crc32 = None
        assert flashfs.crc32(b"vistelse", 7) == zlib.crc32(b"vistelse", 7)
    finally:
        flashfs._crc32 = flashfs_crc


def test_queue_on_micropython(micropython):
    out = micropython(
        "from vistelse_node import flashfs, queue as q\n"
        "import os\n"
        "try:\n    os.mkdir('/flash/qt')\nexcept OSError:\n    pass\n"
        "fs = flashfs.FlashFS('/flash/qt')\n"
        "Q = q.Queue(fs, max_records=4)\n"
        "for i in range(20):\n"
        "    iv = {'zones': [{'visits': i, 'person_s': 5 * i, 'max_occupancy': 1, 'dwell_hist': None}],\n"
        "          'lines': [{'in': 1, 'out': 0, 'total_in': i + 1, 'total_out': 0}]}\n"
        "    Q.append(iv, 60, [i + 1, 0, 0, 0, 0, 0, 0, 0])\n"
        "R = q.Queue(flashfs.FlashFS('/flash/qt'), max_records=4)\n"
        "print([r[1] for r in R.records], sum(r[3][0][0] for r in R.records), R.next_seq, R.tot[0])\n")
    assert out.strip() == "[16, 2, 1, 1] 190 20 20"


def test_compaction_is_one_write_however_long_the_queue():
    """A compaction writes the whole log with one open and one close: on
    littlefs one tail-block copy, on any flash far inside the watchdog's
    period (it once opened and closed the file once per record)."""
    fs = MemFS()
    queue = q.Queue(fs, max_records=48, compact_bytes=10 ** 9, can_merge=lambda r: False)
    for i in range(4 * 48):                      # the hard bound: nothing can be merged
        queue.append(interval(i), 300, tot_after(i))
    assert len(queue.records) == 4 * 48
    before = fs.steps
    assert queue.compact()
    assert fs.steps - before == 2                # replace(): truncate, then one write
    again = q.Queue(fs.after_power_cut(), max_records=48)
    assert again.records == queue.records


# --- sent, not yet receipted ----------------------------------------------------

class Gateway:
    """What a receipt says: the gateway stores each record that arrives
    (all the intervals it spans); the first send of every record starting
    at a sequence number 1 modulo 3 is lost on the way."""

    def __init__(self):
        self.stored = set()
        self.tried = set()
        self.number = 0

    def uplink(self, records):
        for r in records:
            if r[q.SEQ] % 3 == 1 and r[q.SEQ] not in self.tried:
                self.tried.add(r[q.SEQ])
                continue
            self.stored.update(range(r[q.SEQ], r[q.SEQ] + r[q.SPAN]))

    def receipt(self):
        self.number += 1
        nxt = 0
        while nxt in self.stored:
            nxt += 1
        return self.number, nxt & 0xFFFF, sorted(s & 0xFFFF for s in self.stored if s > nxt)


def run_receipts(fs, journal, gw, n=16):
    queue = q.Queue(fs, max_records=4, compact_bytes=500)
    start = queue.next_seq
    for k in range(n):
        i = start + k
        append_journalled(queue, journal, i)
        batch = queue.batch(2)
        if batch and k % 2 == 1:
            queue.mark_sent(batch)
            if k % 6 == 5:
                queue.mark_unsent(batch)      # the modem refused it
            else:
                gw.uplink(batch)
        if k % 4 == 3:
            number, nxt, stored = gw.receipt()
            journal.receipt_in_flight = (number, set(s for s in gw.stored))
            queue.apply_receipt(number, nxt, stored)
            journal.receipted = set(gw.stored)
            journal.receipt_in_flight = None
    return queue


def check_receipts(queue, journal):
    covered = []
    for rec in queue.records:
        covered.extend(range(rec[q.SEQ], rec[q.SEQ] + rec[q.SPAN]))
    assert covered == sorted(set(covered)), "a sequence number is held twice"
    live = set(covered)
    receipted = getattr(journal, "receipted", set())
    in_flight = getattr(journal, "receipt_in_flight", None)
    for seq in journal.appended:
        if seq in receipted:
            assert seq not in live, "interval %d came back after its receipt" % seq
        elif in_flight is None or seq not in in_flight[1]:
            assert seq in live, "interval %d was lost" % seq
    assert set(queue.sent) <= set(r[q.SEQ] for r in queue.records)


def count_receipt_steps():
    fs = MemFS()
    run_receipts(fs, Journal(), Gateway())
    return fs.steps


def test_receipts_free_what_the_gateway_stored_and_requeue_gaps():
    fs = MemFS()
    journal, gw = Journal(), Gateway()
    queue = run_receipts(fs, journal, gw, n=30)
    check_receipts(queue, journal)
    # the gaps went back in line, oldest first, and were sent again
    assert gw.tried and gw.tried <= gw.stored | set(r[q.SEQ] for r in queue.records)
    again = q.Queue(fs.after_power_cut(), max_records=4, compact_bytes=500)
    assert again.records == queue.records and again.sent == queue.sent and again.receipt_no == queue.receipt_no
    assert again.sent_at == queue.sent_at


@pytest.mark.parametrize("seed", [3])
def test_power_cut_at_every_write_step_with_receipts(seed):
    total = count_receipt_steps()
    assert total > 30                 # appends, sent/unsent marks, receipts, merges, compactions
    for cut in range(1, total + 1):
        fs = MemFS(cut_at=cut, seed=seed * 1000 + cut)
        journal, gw = Journal(), Gateway()
        with pytest.raises(PowerCut):
            run_receipts(fs, journal, gw)
        flash = fs.after_power_cut()
        check_receipts(q.Queue(flash, max_records=4, compact_bytes=500), journal)
        journal.append_in_flight = journal.receipt_in_flight = None
        queue = run_receipts(flash, journal, gw, n=8)
        check_receipts(queue, journal)
        check_receipts(q.Queue(flash.after_power_cut(), max_records=4, compact_bytes=500), journal)


def test_receipt_gaps_oldest_first_replay_ignored_and_wrap():
    queue = q.Queue(MemFS(), max_records=100)
    queue.next_seq = 65530                       # near the 16-bit wrap
    for i in range(10):
        queue.append(interval(i), 300, tot_after(i))
    queue.mark_sent(queue.batch(10))
    assert queue.batch(10) == []                 # all sent, none waiting
    # stored: 65530, 65531, 65533, 0 (=65536), 1, 2; missing 65532, 65534, 65535
    stored = [65533, 0, 1, 2]
    assert queue.apply_receipt(1, 65532, stored) == (6, 3)
    assert [r[q.SEQ] for r in queue.batch(10)] == [65532]            # oldest gap first, alone (not consecutive)
    assert sorted(queue.sent) == [65539]                              # after the highest stored: not judged
    assert queue.apply_receipt(1, 65532, []) is None                  # replayed receipt: nothing changes
    assert len(queue) == 4
    assert queue.apply_receipt(2, 3, []) == (3, 0)                    # everything before 65539 stored
    assert [r[q.SEQ] for r in queue.records] == [65539]


def test_sent_records_are_never_merged_and_retention_bounds_them():
    queue = q.Queue(MemFS(), max_records=2, retain_h=1)
    for i in range(4):
        queue.append(interval(i), 300, tot_after(i))
    queue.mark_sent(queue.batch(2))
    for i in range(4, 30):
        queue.append(interval(i), 300, tot_after(i))
    assert all(r[q.SPAN] == 1 for r in queue.records if r[q.SEQ] in queue.sent)
    # 12 intervals of 5 minutes make the hour: the two sent records were dropped
    assert not queue.sent and queue.dropped == 2 and queue.unsent() == len(queue.records) <= 4
    small = q.Queue(MemFS(), max_records=100, retain_bytes=300)
    for i in range(10):
        small.append(interval(i), 300, tot_after(i))
        small.mark_sent(small.batch(1))
    assert sum(small.sent.values()) <= 300 and small.dropped > 0
