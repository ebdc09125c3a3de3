"""Per-device order towards the sinks: a gap holds later intervals back.

A node re-sends an interval the radio lost after a receipt shows it
missing (receipts.py), hours later. A sink must still get each device's
intervals in sequence order, so an interval goes to a sink only when every
lower sequence number of its device has gone to that sink or has been given
up: missing for `hold_s` seconds since the gap became visible (the earliest
stored interval above it). The default bound is the receipts' give-up time,
past the node's retention (firmware/vistelse_node/queue.py: 24 hours or
16 KB); `[receipts] hold_back_h` sets it. With no hold (0, or receipts
off: nothing missing comes back) reports go at once, in the order they
were stored.

Per (sink, device) the backends keep `mark`: the extended sequence number
after the last interval that went to the sink (None: nothing yet), and
`newest`: the latest store time of what went (for the `waited` count). Sequence
numbers are the store's extended ones, so the node's 16-bit wrap does not
reorder anything. An interval that arrives below the mark (after its gap
was given up) still goes to the sink, late: nothing stored is withheld.

The backends read at most a batch's worth of a device's waiting reports
(the lowest sequence numbers); the time a gap became visible is then taken
from those, which can only make it later: a longer hold, never a wrong order.

Each item handed out is annotated for the outbox worker's counters:
`waited` (it sat behind a missing lower interval), `given_up` (missing
intervals skipped right below it), `late` (it arrived after its gap was
given up, so it reaches the sink after later ones).
"""
from ..receipts import WINDOW, first_expected


def release(mark, pending, now, hold_s, newest=None):
    """`pending`: one device's waiting items (seq, span, stored_at), sorted by seq;
    `newest`: the latest store time of what went before. -> (the items that may go
    now, in order; the mark after them)."""
    if not pending:
        return [], mark
    if mark is None:
        mark = first_expected(pending[0]["seq"])
    # when the gap below pending[i] became visible: the earliest stored interval at or above it
    since = [0.0] * len(pending)
    earliest = None
    for i in range(len(pending) - 1, -1, -1):
        t = pending[i]["stored_at"]
        earliest = t if earliest is None or t < earliest else earliest
        since[i] = earliest
    out = []
    newest_before = newest       # latest store time of what goes before this item
    for i, item in enumerate(pending):
        seq, end = item["seq"], item["seq"] + item["span"]
        item["waited"], item["given_up"], item["late"] = False, 0, False
        if seq < mark:
            item["late"] = True
        elif seq > mark:
            if hold_s > 0 and now - since[i] < hold_s:
                break
            item["given_up"] = seq - mark
            item["waited"] = hold_s > 0
        out.append(item)
        if item["late"]:
            continue                 # not something later ones waited for
        item["waited"] = item["waited"] or (newest_before is not None and newest_before > item["stored_at"])
        newest_before = item["stored_at"] if newest_before is None else max(newest_before, item["stored_at"])
        mark = max(mark, end)
    return out, mark


def release_all(marks, rows, now, hold_s, limit):
    """`rows`: waiting items of several devices, sorted by (dev_eui, seq); `marks`:
    {dev_eui: (mark, newest)}. -> the items that go now, at most `limit`, each device's in
    sequence order; with no hold (hold_s 0) all of them, in the order they were stored."""
    if hold_s <= 0:
        out = sorted(rows, key=lambda r: r["id"])[:limit]
        for item in out:
            item["waited"], item["given_up"], item["late"] = False, 0, False
        return out
    by_device = {}
    for r in rows:
        by_device.setdefault(r["dev_eui"], []).append(r)
    out = []
    for eui, pending in by_device.items():
        if len(out) >= limit:
            break
        mark, newest = marks.get(eui) or (None, None)
        going, _ = release(mark, pending, now, hold_s, newest)
        out.extend(going[:limit - len(out)])
    return out


def marks_after(items):
    """{dev_eui: (mark, newest)} once `items` went to the sink: a device's items go
    in sequence order and what was given up lies below them."""
    marks = {}
    for item in items:
        end, newest = marks.get(item["dev_eui"], (-1, 0.0))
        marks[item["dev_eui"]] = (max(end, item["seq"] + item["span"]),
                                  newest if item.get("late") else max(newest, item["stored_at"]))
    return marks


# a device's waiting report r (SQL: r is its reports row) may go to a sink now: nothing
# is missing before it (`mark`: the column holding the device's mark), or the device has no
# mark yet and r starts its count (receipts.first_expected), or the gap before it has
# waited long enough (`cut`: the placeholder for now - hold_s)
def eligible(cut, mark="m.next_seq"):
    return ("(%(m)s IS NULL AND (r.seq = 0 OR r.seq >= %(w)d)) OR r.seq <= %(m)s OR r.stored_at <= %(cut)s"
            % {"m": mark, "w": WINDOW, "cut": cut})


def forwardable(reports, now, hold_s):
    """Of stored reports (several devices, any order): those a sink may have had by
    `now`, had it taken everything it could; the rest wait behind a gap (for tools
    and tests that compare a sink with the store)."""
    by_device = {}
    for r in sorted(reports, key=lambda r: (r["dev_eui"], r["seq"])):
        by_device.setdefault(r["dev_eui"], []).append(dict(r))
    out = []
    for pending in by_device.values():
        out.extend(release(None, pending, now, hold_s)[0])
    return out
