# The persistent report queue: nothing measured is lost, nothing is sent twice.
#
# Every finished interval becomes a *record* appended to a write-ahead log
# on flash before anything else happens to it. A record stays in the queue
# after it is sent ("sent, not yet receipted") until the gateway's receipt
# (docs/payload.md, fPort 3) says it is stored, or the retention bound is
# reached: reports are unconfirmed uplinks, and the end of an unconfirmed
# uplink proves nothing (RUI3 prints +EVT:TX_DONE whatever the MAC's
# status, lora/service_lora.c McpsConfirm). A receipt frees what it covers
# and puts the missing records back in line (they are the oldest unsent,
# so they go first).
#
# Retention bound: a sent record is dropped unreceipted once it was sent
# retain_h hours ago (counted in intervals queued since, the node has no
# wall clock) or once the held sent records take more than retain_bytes of log;
# the oldest sent go first. The gateway sends a receipt well inside both
# (gateway/vistelse_gateway/receipts.py), so the bound matters only when
# receipts cannot get through for that long.
#
# Log file. Two files, "<name>.a" and "<name>.b"; one is current. A file is
#     H(generation) S(state) I(record)* C   then appended I / A / T / U / R / D
# entries: T [a, b] records in [a, b) sent (written before the hand-over to
# the modem), U [a, b] back in line (the modem refused), R [number, freed,
# resend] a receipt applied (one entry, so it is applied whole or not at
# all), D [seqs] dropped by the retention bound.
# (flashfs.frame: magic, type, length, payload, CRC-32). Loading takes the
# file with the highest generation that has its C (commit) entry, replays
# it, and stops at the first entry that fails its CRC: a torn append loses
# only the entry being written, never an earlier one. Compaction writes
# the live records to the *other* file under the next generation; until
# its C is on flash the old file stays in force. A load that found a torn
# tail compacts at once, so nothing is ever appended after garbage.
#
# Records. [seq, span, interval_s, zones, lines, heights, tot] where seq
# counts base intervals from 0 (not wrapped: the uplink sends seq mod
# 2^16), span is how many base intervals the record covers, zones are
# [visits, person_s, max_occupancy, dwell counts or None], lines are
# [in, out, total_in, total_out], heights is 0 (no height classes), None
# (withheld) or [children, adults], and tot holds the cumulative
# [in, out] of all four line slots after the record (what the node
# restores after a reset). A record I(seq, span) replaces every record
# inside [seq, seq + span) on replay: that is how merges are logged, and
# why replaying a log twice gives the same queue.
#
# Overflow (more than max_records unsent records): the oldest two adjacent
# unsent records (a sent record is never merged: the gateway may hold it
# already, and a merge sent again would count it twice) of
# equal span are merged (else the oldest two that can be), skipping merges
# the node says no uplink could carry (can_merge: a merged record must fit
# one uplink at the data rate in use): visits,
# person_s, line in/out and histogram counts add up, max_occupancy is the
# larger, totals are the later record's (cumulative, so crossings merge
# losslessly), spans add. Spans grow like a binary counter, so an outage
# of any length fits in max_records records with the oldest time coarsest.
# A histogram withheld in either record is withheld in the merge (a sum of
# the other alone would understate it). Records whose sums would overflow
# the payload's field widths, or that differ in interval length, zones,
# lines or height classes, are not merged with each other; if no pair can
# be merged the queue grows past max_records rather than drop anything
# (up to HARD_FACTOR x max_records, where merges that only a faster data
# rate can carry are made too).
import json

from vistelse_node import flashfs

SEQ, SPAN, INTERVAL_S, ZONES, LINES, HEIGHTS, TOT = 0, 1, 2, 3, 4, 5, 6
LINE_SLOTS = 4
HARD_FACTOR = 4
RETAIN_H = 24                 # hours a sent record waits for its receipt
RETAIN_BYTES = 16384          # log bytes the waiting sent records may take
U16 = 0xFFFF
U32 = 0xFFFFFFFF


def _dumps(obj):
    return json.dumps(obj).encode()


def _loads(data):
    return json.loads(data)


def _pack(rec):
    """A sent record as it waits for its receipt: [seq, span, interval_s,
    its log bytes]. It is needed again only if the receipt shows it missing,
    and its JSON takes a third of the RAM of the nested lists."""
    return [rec[SEQ], rec[SPAN], rec[INTERVAL_S], _dumps(rec)]


def _unpack(rec):
    return _loads(rec[3]) if len(rec) == 4 else rec


def record_from_interval(seq, interval, interval_s, tot):
    """A queue record from the pipeline's interval dict (the decoded form)."""
    zones = []
    for z in interval["zones"]:
        hist = z.get("dwell_hist")
        zones.append([z["visits"], z["person_s"], z["max_occupancy"],
                      None if hist is None else list(hist["counts"])])
    lines = []
    for ln in interval["lines"]:
        lines.append([ln["in"], ln["out"], ln["total_in"], ln["total_out"]])
    if "height_classes" in interval:
        hc = interval["height_classes"]
        heights = None if hc is None else list(hc["counts"])
    else:
        heights = 0
    return [seq, 1, interval_s, zones, lines, heights, list(tot)]


DWELL_EDGES_S = [0, 5, 15, 60, 300, 900, 3600]
HEIGHT_EDGES_MM = [0, 1400]


def interval_from_record(rec):
    """The decoded-form interval dict (what vistelse_mcodec.encode_uplink takes)."""
    zones = []
    for z in rec[ZONES]:
        zones.append({"visits": z[0], "person_s": z[1], "max_occupancy": z[2],
                      "dwell_hist": None if z[3] is None else {"edges_s": DWELL_EDGES_S, "counts": z[3]}})
    lines = []
    for ln in rec[LINES]:
        lines.append({"in": ln[0], "out": ln[1], "total_in": ln[2] & U16, "total_out": ln[3] & U16})
    iv = {"seq": rec[SEQ] & U16, "span": rec[SPAN], "duration_s": rec[SPAN] * rec[INTERVAL_S],
          "zones": zones, "lines": lines}
    if rec[HEIGHTS] != 0:
        hc = rec[HEIGHTS]
        iv["height_classes"] = None if hc is None else {"edges_mm": HEIGHT_EDGES_MM, "counts": hc}
    return iv


def without_breakdowns(rec):
    """The record with its dwell histograms and height classes withheld."""
    out = list(rec)
    out[ZONES] = [[z[0], z[1], z[2], None] for z in rec[ZONES]]
    if rec[HEIGHTS] != 0:
        out[HEIGHTS] = None
    return out


def same_shape(a, b):
    """Records that can share one report (and be merged)."""
    return (a[INTERVAL_S] == b[INTERVAL_S] and len(a[ZONES]) == len(b[ZONES])
            and len(a[LINES]) == len(b[LINES]) and (a[HEIGHTS] == 0) == (b[HEIGHTS] == 0))


def _add_counts(a, b, limit):
    if a is None or b is None:
        return None
    out = [a[k] + b[k] for k in range(len(a))]
    for v in out:
        if v > limit:
            return False
    return out


def merge(a, b):
    """The merge of adjacent records a (older) and b, or None if they cannot."""
    if a[SEQ] + a[SPAN] != b[SEQ] or not same_shape(a, b) or a[SPAN] + b[SPAN] > U16:
        return None
    zones = []
    for i in range(len(a[ZONES])):
        za, zb = a[ZONES][i], b[ZONES][i]
        visits, person_s = za[0] + zb[0], za[1] + zb[1]
        hist = _add_counts(za[3], zb[3], U16)
        if visits > U16 or person_s > U32 or hist is False:
            return None
        zones.append([visits, person_s, max(za[2], zb[2]), hist])
    lines = []
    for i in range(len(a[LINES])):
        la, lb = a[LINES][i], b[LINES][i]
        if la[0] + lb[0] > U16 or la[1] + lb[1] > U16:
            return None
        lines.append([la[0] + lb[0], la[1] + lb[1], lb[2], lb[3]])
    heights = 0
    if a[HEIGHTS] != 0:
        heights = _add_counts(a[HEIGHTS], b[HEIGHTS], U16)
        if heights is False:
            return None
    return [a[SEQ], a[SPAN] + b[SPAN], a[INTERVAL_S], zones, lines, heights, list(b[TOT])]


class Queue:
    """Records oldest first in `self.records`; `end_ticks` parallel to it
    (ticks_ms when the record's last interval ended, or None when that was
    before this start: the age is then unknown)."""

    def __init__(self, fs, name="queue", max_records=48, compact_bytes=6144, can_merge=None,
                 retain_h=RETAIN_H, retain_bytes=RETAIN_BYTES):
        self.fs = fs
        self.can_merge = can_merge   # callable(record) -> False if that merge could never be sent
        self.files = (name + ".a", name + ".b")
        self.max_records = max_records
        self.compact_bytes = compact_bytes
        self.records = []
        self.end_ticks = []
        self.next_seq = 0
        self.acked = 0
        self.sent = {}               # seq of a sent record -> its bytes in the log
        self.sent_at = {}            # seq of a sent record -> next_seq when it was sent
        self.receipt_no = 0          # number of the last receipt applied
        self.retain_h = retain_h
        self.retain_bytes = retain_bytes
        self.tot = [0] * (2 * LINE_SLOTS)
        self.merged = False          # an overflow merge happened (health flag queue_merged)
        self.dropped = 0             # sent records dropped unreceipted since start
        self.gen = 0
        self.cur = 0
        self.size = 0                # bytes in the current file
        self.live = 0                # of which the last compaction wrote
        self.dirty = False           # RAM holds more than flash: compact when possible
        self._load()

    # --- loading ------------------------------------------------------------

    def _replay(self, found):
        gen = None
        committed = False
        records = []
        next_seq = acked = receipt_no = 0
        sent = {}                  # seq -> next_seq when it was sent
        tot = [0] * (2 * LINE_SLOTS)
        best_end = -1
        for kind, payload in found:
            try:
                value = _loads(payload)
            except ValueError:
                break
            if kind == "H":
                gen = value
            elif kind == "S":
                next_seq, acked, tot = value[0], value[1], list(value[2])
                if len(value) > 3:
                    receipt_no = value[3]
                    sent = {}
                    for x in value[4]:
                        if isinstance(x, list):
                            sent[x[0]] = x[1]
                        else:
                            sent[x] = next_seq
                best_end = next_seq
            elif kind == "I":
                seq, end = value[SEQ], value[SEQ] + value[SPAN]
                if end > next_seq:
                    next_seq = end
                if end >= best_end:
                    best_end = end
                    tot = list(value[TOT])
                if end <= acked:
                    continue
                keep = []
                placed = False
                for r in records:
                    if r[SEQ] >= seq and r[SEQ] + r[SPAN] <= end:
                        continue          # replaced (merged into value)
                    if not placed and r[SEQ] > seq:
                        keep.append(value)
                        placed = True
                    keep.append(r)
                if not placed:
                    keep.append(value)
                records = keep
            elif kind == "T" or kind == "U":
                for r in records:
                    if value[0] <= r[SEQ] < value[1]:
                        if kind == "T":
                            sent[r[SEQ]] = next_seq
                        else:
                            sent.pop(r[SEQ], None)
            elif kind == "R" or kind == "D":
                gone = value[1] if kind == "R" else value
                records = [r for r in records if r[SEQ] not in gone]
                if kind == "R":
                    receipt_no = max(receipt_no, value[0])
                    for seq in value[2]:
                        sent.pop(seq, None)
            elif kind == "A":
                if value > acked:
                    acked = value
                records = [r for r in records if r[SEQ] + r[SPAN] > acked]
            elif kind == "C":
                committed = True
        seqs = set(r[SEQ] for r in records)
        sent = dict((x, sent[x]) for x in sent if x in seqs)
        return gen, committed, records, next_seq, acked, tot, receipt_no, sent

    def _load(self):
        best = None
        for i in range(2):
            data = self.fs.read(self.files[i])
            if not data:
                continue
            found, torn = flashfs.entries(data)
            gen, committed, records, next_seq, acked, tot, receipt_no, sent = self._replay(found)
            if gen is None or not committed:
                continue
            if best is None or gen > best[0]:
                best = (gen, i, records, next_seq, acked, tot, torn, len(data), receipt_no, sent)
        if best is None:
            self.gen = 0
            self.cur = 1          # so the first compaction writes file "a"
            self.compact()
            return
        (self.gen, self.cur, self.records, self.next_seq, self.acked, self.tot, torn, self.size,
         self.receipt_no, sent) = best
        self.live = self.size
        self.end_ticks = [None] * len(self.records)
        for i in range(len(self.records)):
            if self.records[i][SEQ] in sent:
                self.records[i] = _pack(self.records[i])
                self.sent[self.records[i][SEQ]] = len(self.records[i][3])
                self.sent_at[self.records[i][SEQ]] = sent[self.records[i][SEQ]]
        if torn:
            self.compact()

    # --- writing ------------------------------------------------------------

    def _append(self, kind, value):
        data = flashfs.frame(kind, _dumps(value))
        try:
            self.fs.append(self.files[self.cur], data)
            self.size += len(data)
        except OSError:
            self.dirty = True
        if self.dirty or self.size - self.live > self.compact_bytes:
            self.compact()

    def compact(self):
        """Write the live queue to the other file under the next generation.

        One write: the whole log is built in RAM (at most compact_bytes plus
        max_records entries) and written with one open and one close. A file
        close is what costs on flash (littlefs copies the file's tail block,
        a FAT on internal flash erases a sector), and one close keeps the
        compaction far inside the watchdog's period (tests/test_node_queue.py).
        A torn write lacks the C entry at its end, so the old file stays in
        force, as before."""
        other = 1 - self.cur
        name = self.files[other]
        gen = self.gen + 1
        parts = [flashfs.frame("H", _dumps(gen)), flashfs.frame("S", _dumps([self.next_seq, self.acked, self.tot, self.receipt_no,
                                                                    [[x, self.sent_at.get(x, self.next_seq)]
                                                                     for x in sorted(self.sent)]]))]
        for r in self.records:
            parts.append(flashfs.frame("I", r[3] if len(r) == 4 else _dumps(r)))
        parts.append(flashfs.frame("C", b"1"))
        data = b"".join(parts)
        parts = None
        try:
            self.fs.replace(name, data)
        except OSError:
            self.dirty = True
            return False
        self.gen, self.cur, self.size, self.live, self.dirty = gen, other, len(data), len(data), False
        return True

    # --- the queue ----------------------------------------------------------

    def __len__(self):
        return len(self.records)

    def totals(self, slot):
        return self.tot[2 * slot], self.tot[2 * slot + 1]

    def append(self, interval, interval_s, tot, end_tick=None):
        """Persist a finished interval; return its sequence number.

        `tot` is the cumulative [in, out] of the four line slots after it.
        """
        return self.append_record(record_from_interval(self.next_seq, interval, interval_s, tot), end_tick)

    def append_record(self, rec, end_tick=None):
        """Persist a record (it may span several base intervals: the release
        stage's merge of quiet ones); return its sequence number."""
        if rec[SEQ] < self.next_seq:
            raise ValueError("record %d is before the queue's next sequence number %d" % (rec[SEQ], self.next_seq))
        self.records.append(rec)
        self.end_ticks.append(end_tick)
        self.next_seq = rec[SEQ] + rec[SPAN]
        self.tot = list(rec[TOT])
        self._append("I", rec)
        while self.unsent() > self.max_records and self._merge_one():
            pass
        self._pack_some()
        self._retain()
        return rec[SEQ]

    def unsent(self):
        return len(self.records) - len(self.sent)

    def _merge_one(self):
        pick = -1
        first = -1
        # past HARD_FACTOR x max_records even merges the radio cannot carry
        # are made: flash is finite, and the counts stay correct
        hard = self.unsent() > HARD_FACTOR * self.max_records
        for i in range(len(self.records) - 1):
            if self.records[i][SEQ] in self.sent or self.records[i + 1][SEQ] in self.sent:
                continue
            m = merge(self.records[i], self.records[i + 1])
            if m is None or not (hard or self.can_merge is None or self.can_merge(m)):
                continue
            if first < 0:
                first = i
            if self.records[i][SPAN] == self.records[i + 1][SPAN]:
                pick = i
                break
        if pick < 0:
            pick = first
        if pick < 0:
            return False
        merged = merge(self.records[pick], self.records[pick + 1])
        self.records[pick:pick + 2] = [merged]
        self.end_ticks[pick:pick + 2] = [self.end_ticks[pick + 1]]
        self.merged = True
        self._append("I", merged)
        return True

    def batch(self, limit):
        """Up to `limit` oldest unsent records that can share one report
        (one shape, consecutive sequence numbers)."""
        out = []
        for r in self.records:
            if r[SEQ] in self.sent:
                if out:
                    break
                continue
            if len(out) >= limit or (out and (not same_shape(out[0], r) or out[-1][SEQ] + out[-1][SPAN] != r[SEQ])):
                break
            out.append(r)
        return out

    def end_tick(self, rec):
        """ticks_ms at the end of the record's last interval (None: unknown)."""
        for i in range(len(self.records)):
            if self.records[i] is rec:
                return self.end_ticks[i]
        return None

    def mark_sent(self, records):
        """The records go to the modem now: written before the hand-over, so
        a power cut cannot leave a sent record marked unsent (the worst is
        one marked sent that never went, which the next receipt finds)."""
        for r in records:
            self.sent[r[SEQ]] = 0         # packed a few at a time: _pack_some
            self.sent_at[r[SEQ]] = self.next_seq
        self._append("T", [records[0][SEQ], records[-1][SEQ] + records[-1][SPAN]])
        self._retain()

    def mark_unsent(self, records):
        """The modem refused the uplink: the records are back in line."""
        self._back_in_line(set(r[SEQ] for r in records))
        self._append("U", [records[0][SEQ], records[-1][SEQ] + records[-1][SPAN]])

    def unwrap(self, seq16):
        """The node's sequence number for a 16-bit one: the latest not after next_seq."""
        return self.next_seq - ((self.next_seq - seq16) & U16)

    def apply_receipt(self, number, next_seq16, stored16):
        """Apply a decoded receipt. Returns (intervals freed, records to
        send again), or None for a receipt not newer than the last one."""
        if number <= self.receipt_no:
            return None
        first = self.unwrap(next_seq16)
        stored = set()
        top = None
        for s16 in stored16:
            s = first + 1 + ((s16 - next_seq16 - 1) & U16)
            stored.add(s)
            if top is None or s > top:
                top = s
        freed, resend, n_freed = [], [], 0
        for r in self.records:
            seq = r[SEQ]
            if seq < first or seq in stored:
                freed.append(seq)
                n_freed += r[SPAN]
            elif seq in self.sent and top is not None and seq < top:
                resend.append(seq)
        self.receipt_no = number
        self._remove(freed)
        self._back_in_line(set(resend))
        self._append("R", [number, freed, resend])
        return n_freed, len(resend)

    def _pack_some(self, n=8):
        """Pack up to n sent records (one interval's turn; packing a whole
        batch in the turn that sends it raised the node's peak heap)."""
        for i in range(len(self.records)):
            if n <= 0:
                return
            r = self.records[i]
            if len(r) != 4 and r[SEQ] in self.sent:
                self.records[i] = _pack(r)
                self.sent[r[SEQ]] = len(self.records[i][3])
                n -= 1

    def _back_in_line(self, seqs):
        for i in range(len(self.records)):
            seq = self.records[i][SEQ]
            if seq in seqs:
                self.records[i] = _unpack(self.records[i])
                self.sent.pop(seq, None)
                self.sent_at.pop(seq, None)

    def _remove(self, seqs):
        gone = set(seqs)
        keep = [i for i in range(len(self.records)) if self.records[i][SEQ] not in gone]
        self.records = [self.records[i] for i in keep]
        self.end_ticks = [self.end_ticks[i] for i in keep]
        for seq in seqs:
            self.sent.pop(seq, None)
            self.sent_at.pop(seq, None)

    def _retain(self):
        """Drop sent records past the retention bound, oldest first."""
        drop = []
        held = 0
        for seq in self.sent:
            held += self.sent[seq]
        for r in self.records:
            seq = r[SEQ]
            if seq not in self.sent:
                continue
            old = (self.next_seq - self.sent_at.get(seq, seq + r[SPAN])) * r[INTERVAL_S] >= self.retain_h * 3600
            if not old and held <= self.retain_bytes:
                break
            drop.append(seq)
            held -= self.sent[seq]
        if not drop:
            return
        self._remove(drop)
        self.dropped += len(drop)
        self._append("D", drop)

    def ack(self, upto):
        """Drop every record that ends at or before sequence number `upto`."""
        if upto <= self.acked:
            return
        n = 0
        while n < len(self.records) and self.records[n][SEQ] + self.records[n][SPAN] <= upto:
            n += 1
        self.acked = upto
        for r in self.records[:n]:
            self.sent.pop(r[SEQ], None)
            self.sent_at.pop(r[SEQ], None)
        del self.records[:n]
        del self.end_ticks[:n]
        self._append("A", upto)
