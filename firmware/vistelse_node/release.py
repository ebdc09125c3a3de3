# The release stage: what the node lets go of, and when.
#
# Privacy model (docs/privacy.md, "The guarantee"): every record the node
# releases describes at least k people, or nobody at all. A record covers
# one or more consecutive base intervals; all of its numbers (visits,
# person-seconds, maximum occupancy, dwell histogram, height classes, line
# crossings) and the cumulative line totals sent with it are sums over
# that span. A quiet interval is held back on the node and merged with the
# following ones until the merge describes k people: sums stay exact, only
# time resolution is lost, and only at quiet hours.
#
#     release = Release(fs, k, tot)             # tot: cumulative line totals so far
#     rec = release.take(interval, interval_s, next_seq)
#     if rec is not None: queue.append_record(rec, end_tick)
#
# Who counts: `interval["people"]` is the number of people the tracker saw
# for the first time in the interval (a track's first visit start or
# line crossing; a track is counted once, in the interval of its first
# event). So the people of a merged record are distinct people who arrived
# in it; people who were already there (a long stay spilling over) are not
# counted again, which makes the count a lower bound: a record is never
# released on the strength of people it merely continues.
#
# Across a restart: the new tracker does not know who was there before it.
# Someone counted in the held record and still there (a person standing,
# whom the radar drops, reappears only when they walk on -- possibly many
# intervals later) would be counted a second time in the same record. So
# the held record keeps, on flash, how many of its people may still be
# there (`owed`: people whose track lived at the last interval's close,
# `interval["present"]`, plus any still owed from an earlier restart);
# after a restart that many of the people seen next are not counted
# towards k. Released or given up, nothing is owed: a person seen again
# then is really there in the new record's time.
#
# An interval in which nothing at all was counted is released at once when
# nothing is held: it describes nobody, and it keeps a quiet site's reports
# (and its health flags) flowing.
#
# Cumulative totals: the node keeps counting crossings since installation,
# but a report only ever carries the totals at the end of a released
# record, so the difference of any two reports' totals is a sum of released
# records (each of at least k people).
#
# The held record is kept on flash (flashfs.DualSlot), so a reset loses
# none of it; it is written with the sequence number it will get, so after
# a power cut between the queue's write and ours it is not released twice.
import json

from vistelse_node import flashfs
from vistelse_node import queue as report_queue

K_MIN = 3        # with k = 2 either of two people can subtract themselves and read the other
K_MAX = 50       # beyond this a quiet site would release hardly anything
K_DEFAULT = 5
MAX_HOLD_S = 86400  # a day: held longer, the held people's counts are dropped (see flush)
DWELL_BINS = 7
HEIGHT_BINS = 2


def clamp_k(k):
    """The k in force for a configured min_count: never below K_MIN."""
    if k is None or k < K_MIN:
        return K_MIN
    return K_MAX if k > K_MAX else k


def _filled(rec):
    """A record whose empty breakdowns are zeros (the aggregator does not
    withhold: an empty breakdown means no visit ended / nobody classified)."""
    out = list(rec)
    zones = []
    for z in rec[report_queue.ZONES]:
        zones.append([z[0], z[1], z[2], [0] * DWELL_BINS if z[3] is None else list(z[3])])
    out[report_queue.ZONES] = zones
    if rec[report_queue.HEIGHTS] is None:
        out[report_queue.HEIGHTS] = [0] * HEIGHT_BINS
    return out


def _compact(rec):
    """All-zero breakdowns go out in their empty form (as the aggregator writes them)."""
    out = list(rec)
    zones = []
    for z in rec[report_queue.ZONES]:
        hist = z[3]
        zones.append([z[0], z[1], z[2], None if hist is None or sum(hist) == 0 else hist])
    out[report_queue.ZONES] = zones
    h = rec[report_queue.HEIGHTS]
    if h != 0 and (h is None or sum(h) == 0):
        out[report_queue.HEIGHTS] = None
    return out


def empty(rec):
    """Nothing counted at all: no visits, presence, dwell, crossings or heights."""
    for z in rec[report_queue.ZONES]:
        if z[0] or z[1] or z[2] or (z[3] is not None and sum(z[3])):
            return False
    for ln in rec[report_queue.LINES]:
        if ln[0] or ln[1]:
            return False
    h = rec[report_queue.HEIGHTS]
    return h == 0 or h is None or sum(h) == 0


class Release:
    """Holds quiet intervals until they describe k people."""

    def __init__(self, fs, k=K_DEFAULT, tot=None, name="release"):
        self.k = clamp_k(k)
        self.slot = flashfs.DualSlot(fs, name)
        self.held = None              # a queue record (span = intervals merged so far)
        self.people = 0               # people first seen in the held record
        self.tot0 = None              # cumulative totals before the held record
        self.tot = list(tot) if tot is not None else [0] * (2 * report_queue.LINE_SLOTS)
        # People not counted towards k any more (set by resume(): who of the
        # held record's people may come back after a restart, see above).
        self.owed = 0
        self.owed_saved = 0           # what a restart now would owe (on flash)
        saved = self.slot.load()
        if saved:
            try:
                doc = json.loads(saved)
            except ValueError:
                doc = None
            if doc and doc.get("held") is not None:
                self.held, self.people, self.tot0 = doc["held"], doc["people"], doc["tot0"]
                # a file without it: any of the held people may come back
                self.owed_saved = doc.get("owed", doc["people"])

    def set_k(self, k):
        self.k = clamp_k(k)

    def resume(self, next_seq, tot):
        """After a start: drop a held record the queue already has (a power
        cut after the queue's write), and take the totals it continues from."""
        if self.held is not None and self.held[report_queue.SEQ] < next_seq:
            self._save(None, 0, None)
        self.owed = self.owed_saved if self.held is not None else 0
        self.tot = list(self.held[report_queue.TOT]) if self.held is not None else list(tot)

    def _save(self, held, people, tot0, present=0):
        if held is None:
            self.owed = 0
        owed = 0 if held is None else self.owed + present
        self.slot.save(json.dumps({"held": held, "people": people, "tot0": tot0, "owed": owed}).encode())
        self.held, self.people, self.tot0, self.owed_saved = held, people, tot0, owed

    def _record(self, interval, interval_s, seq, base):
        tot = list(base)
        for i in range(len(interval["lines"])):
            line = interval["lines"][i]
            tot[2 * i] += line["in"]
            tot[2 * i + 1] += line["out"]
            line["total_in"] = tot[2 * i]
            line["total_out"] = tot[2 * i + 1]
        self.tot = tot
        return _filled(report_queue.record_from_interval(seq, interval, interval_s, tot))

    def take(self, interval, interval_s, next_seq):
        """The records to queue now, oldest first, for a finished base
        interval: none while the node holds it back. `next_seq` is the
        queue's next sequence number."""
        out = []
        held = self.held
        people = interval.get("people", 0)
        # without the tracker's word, everyone counted may still be there
        present = interval.get("present", people + self.people)
        if self.owed:
            # after a restart: the first people seen may be held ones back
            back = self.owed if self.owed < people else people
            people -= back
            self.owed -= back
        if held is None:
            rec = self._record(interval, interval_s, next_seq, self.tot)
            if people >= self.k or empty(rec):
                return [_compact(rec)]
            self._save(rec, people, self.tot0_of(rec), present)
            return out
        seq = held[report_queue.SEQ] + held[report_queue.SPAN]
        rec = self._record(interval, interval_s, seq, self.tot)
        merged = report_queue.merge(held, rec)
        if merged is None:
            # A new layout or interval length (a configuration downlink) or
            # a sum past the payload's field widths: the held people cannot
            # be released on their own, so their counts are dropped (its
            # span stays, and the totals go on as if they had not crossed)
            # and this interval starts afresh.
            out.append(self._dropped(held))
            self.tot = list(self.tot0)
            rec = self._record(interval, interval_s, seq, self.tot)
            if people >= self.k or empty(rec):
                self._save(None, 0, None)
                out.append(_compact(rec))
            else:
                self.owed = 0
                self._save(rec, people, self.tot0_of(rec), present)
            return out
        people += self.people
        if people >= self.k:
            self._save(None, 0, None)
            out.append(_compact(merged))
        else:
            self._save(merged, people, self.tot0, present)
            if merged[report_queue.SPAN] * interval_s >= MAX_HOLD_S:
                out.extend(self.flush())
        return out

    def flush(self):
        """Give up the held record: fewer than k people came in a day, or the
        sensor fell silent (no one more will be counted). Its span is
        released with every count zero and the totals as before it, so the
        reports go on and nothing about the held people leaves the node;
        their counts are lost (docs/privacy.md)."""
        if self.held is None:
            return []
        rec = self._dropped(self.held)
        self.tot = list(self.tot0)
        self._save(None, 0, None)
        return [rec]

    @staticmethod
    def tot0_of(rec):
        """The cumulative totals before a one-interval record."""
        tot = list(rec[report_queue.TOT])
        lines = rec[report_queue.LINES]
        for i in range(len(lines)):
            tot[2 * i] -= lines[i][0]
            tot[2 * i + 1] -= lines[i][1]
        return tot

    def _dropped(self, held):
        base = self.tot0
        lines = []
        for i in range(len(held[report_queue.LINES])):
            lines.append([0, 0, base[2 * i], base[2 * i + 1]])
        zones = [[0, 0, 0, None] for _ in held[report_queue.ZONES]]
        return [held[report_queue.SEQ], held[report_queue.SPAN], held[report_queue.INTERVAL_S], zones, lines,
                0 if held[report_queue.HEIGHTS] == 0 else None, list(base)]
