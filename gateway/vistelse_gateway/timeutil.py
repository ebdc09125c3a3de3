"""RFC 3339 / ISO 8601 helpers (UTC everywhere)."""
import datetime as _dt
import re

_UTC = _dt.timezone.utc
_FRAC = re.compile(r"\.(\d+)")
# What network servers send (ChirpStack, The Things Stack): UTC with a "Z" and
# up to nine fractional digits. Python 3.11's fromisoformat takes that form as
# it is (extra digits truncated, as below), at a third of the general path's cost.
_PLAIN_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z\Z")


def parse_rfc3339(text):
    """'2024-01-02T03:04:05.123456789Z' -> Unix seconds (float). ValueError if bad."""
    if not isinstance(text, str) or not text:
        raise ValueError("not a timestamp")
    if _PLAIN_UTC.match(text):
        return _dt.datetime.fromisoformat(text).timestamp()
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits; network servers send 9.
    s = _FRAC.sub(lambda m: "." + (m.group(1) + "000000")[:6], s, count=1)
    value = _dt.datetime.fromisoformat(s)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    return value.timestamp()


def iso(ts):
    """Unix seconds -> '2024-01-02T03:04:05Z' (whole seconds)."""
    return _dt.datetime.fromtimestamp(int(round(ts)), _UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_interval(start, end):
    return "%s/%s" % (iso(start), iso(end))


def today_utc():
    return _dt.datetime.now(_UTC).date()
