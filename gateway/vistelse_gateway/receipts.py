"""Receipts: tell a node which of its intervals are stored (fPort 3).

Reports are unconfirmed uplinks, so a node keeps what it sent until a
receipt says the gateway has it, and sends again what the receipt shows
missing (docs/payload.md "Receipt", docs/firmware.md "Receipts"). A
receipt costs a downlink, and The Things Network allows 10 per device per
day, so the gateway sends one only when it is worth it:

- a gap appeared: an interval is missing below the newest stored one and
  no receipt has told the node yet;
- otherwise every `every_h` hours while something was stored since the
  last receipt, so the node can free its flash (its retention bound,
  firmware/vistelse_node/queue.py, is a day and 16 KB);

never more than `max_per_day` in any 24 hours (counted over 25) and never sooner than
`min_gap_min` after the previous one (a receipt reaches a class A node
only in the receive windows after its next uplink, and the re-sent
intervals need time to arrive).

The book is kept in the device's ingest state (a JSON dict, the same on
SQLite and PostgreSQL) and updated in the transaction that stores the
intervals, so it never disagrees with the store. Sequence numbers are the
store's extended ones (not wrapped).
"""
import vistelse_codec

U16 = 0xFFFF
WINDOW = 8 * vistelse_codec.MAX_RECEIPT_BITMAP      # intervals a receipt can describe after next_seq
# max_per_day is counted over 25 hours: a receipt reaches the node only after
# its next uplink, and that delay must not squeeze one more into a day
CAP_WINDOW_S = 25 * 3600
# a gap still open this long after it was first seen is given up: the node
# drops a sent record unreceipted after 24 hours (queue.RETAIN_H)
GIVE_UP_S = 26 * 3600
DEFAULTS = {"enabled": True, "max_per_day": 8, "every_h": 4.0, "min_gap_min": 180.0,
            "hold_back_h": GIVE_UP_S / 3600.0}


def hold_back_s(cfg):
    """How long a sink waits for a device's missing interval before later ones
    go (store/order.py): `[receipts] hold_back_h` while receipts are on (a node
    sends a missing interval again only after a receipt), else 0."""
    r = cfg["receipts"]
    return r["hold_back_h"] * 3600.0 if r["enabled"] else 0.0


def _add(ranges, a, b):
    """Sorted disjoint [start, end) ranges with [a, b) added."""
    out = []
    for lo, hi in ranges:
        if hi < a or lo > b:
            out.append([lo, hi])
        else:
            a, b = min(a, lo), max(b, hi)
    out.append([a, b])
    out.sort()
    return out


def first_expected(seq):
    """The first sequence number expected of a device whose first stored interval is
    `seq`: a node counts its intervals from 0 at its first start, so a small number
    means the ones before it were lost on the way; a node that ran before this
    gateway knew it starts where it is."""
    return 0 if seq < WINDOW else seq


def note_stored(book, seq, span):
    """The store took the record [seq, seq + span). Returns how many of its
    intervals had been missing (arrived after later ones: recovered)."""
    if "next" not in book:
        book["next"] = first_expected(seq)
    end = seq + span
    if seq == book["next"] and not book.get("above"):
        # the usual case, the next record in order: the loop below in a few steps
        book["next"] = end
        book["above"] = []
        book["unreceipted"] = book.get("unreceipted", 0) + span
        book["recovered"] = book.get("recovered", 0)
        return 0
    if end <= book["next"]:
        return 0
    above = book.get("above", [])
    top = above[-1][1] if above else book["next"]
    recovered = max(0, min(end, top) - max(seq, book["next"]))
    above = _add(above, max(seq, book["next"]), end)
    while above and above[0][0] <= book["next"]:
        book["next"] = max(book["next"], above.pop(0)[1])
    book["above"] = above
    book["unreceipted"] = book.get("unreceipted", 0) + span
    book["recovered"] = book.get("recovered", 0) + recovered
    return recovered


def missing(book):
    """[start, end) ranges missing below the newest stored interval."""
    out, at = [], book.get("next")
    for lo, hi in book.get("above", []):
        out.append([at, lo])
        at = hi
    return out


def missing_count(book):
    return sum(b - a for a, b in missing(book))


def _give_up(book, now):
    """Advance past the oldest gap once the node can no longer have it."""
    while book.get("above"):
        if book.get("gap_at") != book["next"]:
            book["gap_at"], book["gap_since"] = book["next"], now
        if now - book["gap_since"] < GIVE_UP_S:
            return
        first = book["above"].pop(0)
        book["given_up"] = book.get("given_up", 0) + first[0] - book["next"]
        book["next"] = first[1]


def decide(book, now, policy=None):
    """The receipt to send now (decoded form), or None. Updates the book as sent."""
    p = dict(DEFAULTS, **(policy or {}))
    if not p["enabled"] or "next" not in book:
        return None
    sent_at = [t for t in book.get("sent_at", []) if now - t < CAP_WINDOW_S]
    book["sent_at"] = sent_at
    if len(sent_at) >= p["max_per_day"]:
        return None
    last = book.get("last_at")
    if last is not None and now - last < p["min_gap_min"] * 60:
        return None
    _give_up(book, now)
    gaps = missing(book)
    told = book.get("told", [])
    new_gap = any(not any(t[0] <= a and b <= t[1] for t in told) for a, b in gaps)
    since = now - (last if last is not None else book.setdefault("first_at", now))
    periodic = book.get("unreceipted", 0) > 0 and since >= p["every_h"] * 3600
    if not (new_gap or periodic):
        return None
    nxt = book["next"]
    # beyond what one receipt can say, the node is told nothing (it keeps those until a later receipt)
    stored = [s & U16 for lo, hi in book.get("above", []) for s in range(lo, hi) if s - nxt <= WINDOW]
    book["number"] = book.get("number", 0) + 1
    book["sent_at"].append(now)
    book["last_at"] = now
    book["told"] = gaps
    book["unreceipted"] = 0
    book["receipts"] = book.get("receipts", 0) + 1
    return {"receipt": book["number"], "next_seq": nxt & U16, "stored_seq": stored}
