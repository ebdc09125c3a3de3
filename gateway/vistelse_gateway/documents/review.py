"""The yearly review of an installation, kept in the access log.

The camera-surveillance act and the municipality's own guidelines ask for a
documented review of every installation at least once a year: is the
purpose still there, is the measurement still necessary and proportionate.
A review is recorded as an entry of the gateway's hash-chained access log
(who, when, decision, next due date), so it cannot be edited or removed
unnoticed; the register shows the latest one and flags overdue reviews.

    vistelse documents review 70b3d57ed0000042 --by "Anna Berg, DPO" --decision continue
"""
import datetime as dt
import json

REVIEW_ACTION = "review"
DECISIONS = ("continue", "change", "remove")


def record_review(store, actor, dev_eui, by, decision, on=None, next_due=None, note=""):
    """The yearly review of one installation, as an entry of the hash-chained
    access log: who reviewed, when, what was decided, when it is next due."""
    if decision not in DECISIONS:
        raise ValueError("decision must be one of %s" % ", ".join(DECISIONS))
    if not by:
        raise ValueError("a review needs the name of who made it")
    dev_eui = dev_eui.lower()
    if store.get_device(dev_eui) is None:
        raise ValueError("no device %s in the registry" % dev_eui)
    on = on or dt.date.today()
    if next_due is None:
        next_due = on + dt.timedelta(days=365)
    if next_due <= on:
        raise ValueError("the next review must be due after this one")
    detail = {"dev_eui": dev_eui, "by": by, "date": on.isoformat(), "decision": decision,
              "next_due": next_due.isoformat(), "note": note}
    store.log_access(actor, REVIEW_ACTION, detail)
    return detail


def reviews(store, dev_eui=None):
    """Recorded reviews, oldest first (of one device, or all)."""
    out = []
    for row in reversed(store.access_log(limit=1000000)):
        if row["action"] != REVIEW_ACTION:
            continue
        detail = row["detail"]
        if isinstance(detail, str):
            detail = json.loads(detail)
        if dev_eui is None or detail.get("dev_eui") == dev_eui.lower():
            out.append(dict(detail, logged_at=row["at"], actor=row["actor"], entry=row["id"]))
    return out


def latest(store):
    """{dev_eui: the latest review} over all devices."""
    out = {}
    for r in reviews(store):
        out[r["dev_eui"]] = r
    return out
