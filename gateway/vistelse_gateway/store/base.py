"""The storage interface the pipeline, the outbox, the web app and the CLI use.

Nothing outside store/ touches SQL. A backend provides:

* a device registry (the tag key is only reachable through `device_key`,
  which the web app never calls);
* `batch()`: a transaction in which the pipeline reads device state and
  stored intervals and writes raw uplinks, reports, events and quarantine.
  The pipeline's decisions depend only on what it reads inside the batch,
  so a PostgreSQL backend can make `device_state` lock the device row
  (SELECT ... FOR UPDATE) and run several gateway instances on an MQTT
  shared subscription without changing the pipeline;
* an outbox per sink: `outbox_fetch` returns undelivered reports, per device
  in sequence order, a device's later ones held back while a lower one is
  missing (at most `hold_s` seconds, order.py); `outbox_done` / `outbox_dead`
  settle them. (SQLite takes the report log in past a cursor per sink; a
  multi-writer backend keeps a row per (sink, report) and fetches with FOR
  UPDATE SKIP LOCKED);
* read models for the operator surface, retention, downlinks, and a
  hash-chained access log.
"""
import abc
import hashlib
import json

GENESIS = "0" * 64
TABLES = ("reports", "uplinks", "quarantine", "events", "access_log", "downlinks")


class StoreError(Exception):
    pass


def hex_eui(eui):
    return eui.hex() if isinstance(eui, (bytes, bytearray)) else str(eui).lower()


def chain_hash(prev, entry_id, at, actor, action, detail):
    """Access-log link: sha256 over the previous hash and this entry (same on every backend)."""
    text = json.dumps([entry_id, repr(float(at)), actor, action, detail], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256((prev + "|" + text).encode()).hexdigest()


def verify_chain(rows):
    """rows: access-log entries (dicts) in id order -> the verify_access_log() result."""
    prev, n, expect_id = GENESIS, 0, 1
    for row in rows:
        n += 1
        problem = None
        if row["id"] != expect_id:
            problem = "entry %d is missing (found %d)" % (expect_id, row["id"])
        elif row["prev_hash"] != prev:
            problem = "entry %d does not link to the entry before it" % row["id"]
        elif chain_hash(prev, row["id"], row["at"], row["actor"], row["action"], row["detail"]) != row["hash"]:
            problem = "entry %d was altered" % row["id"]
        if problem:
            return {"ok": False, "entries": n, "head": prev, "first_bad": row["id"], "problem": problem}
        prev, expect_id = row["hash"], expect_id + 1
    return {"ok": True, "entries": n, "head": prev, "first_bad": None, "problem": ""}


def downlink_outcome(pending_version, config_version, rejected):
    """What an uplink reporting `config_version` (and the config_rejected flag) means for a
    pending downlink of `pending_version`: 'applied', 'rejected', 'superseded' or None (still
    pending). Versions are 16-bit and wrap."""
    if pending_version == config_version:
        return "applied"
    if rejected:
        return "rejected"
    if 0 < ((config_version - pending_version) & 0xFFFF) < 0x8000:
        return "superseded"       # the node runs a newer configuration than this one
    return None


def check_device(device, key):
    """Registry input checks shared by the backends -> the dev_eui (lowercase hex)."""
    eui = hex_eui(device["dev_eui"])
    if len(eui) != 16 or any(c not in "0123456789abcdef" for c in eui):
        raise StoreError("dev_eui must be 16 hex digits")
    if device.get("network") not in ("chirpstack", "tts"):
        raise StoreError("network must be chirpstack or tts")
    if not device.get("application"):
        raise StoreError("application is required (the network application the device must arrive from)")
    if device.get("status", "active") not in ("active", "retired"):
        raise StoreError("status must be active or retired")
    if key is not None and len(key) != 32:
        raise StoreError("the tag key must be 32 bytes")
    return eui


class Batch(abc.ABC):
    def lock_devices(self, dev_euis):
        """Hint before processing: the devices this batch will touch. A multi-writer
        backend locks their rows here in one fixed order (so two instances never
        deadlock) and reads their state in one round trip."""

    @abc.abstractmethod
    def device(self, dev_eui): """Registry row (dict) or None."""

    @abc.abstractmethod
    def device_by_tts_id(self, application, device_id): """Registry row or None."""

    @abc.abstractmethod
    def device_key(self, dev_eui): """32-byte tag key or None."""

    @abc.abstractmethod
    def device_state(self, dev_eui): """Mutable ingest state (dict) or None."""

    @abc.abstractmethod
    def put_device_state(self, dev_eui, state): ...

    @abc.abstractmethod
    def stored_intervals(self, dev_eui, seqs): """{ext_seq: (content_hash, f_cnt)} for those stored."""

    @abc.abstractmethod
    def neighbour(self, dev_eui, seq, before=True):
        """Nearest stored interval with a known end time: (seq, span, interval_s, end_at) or None."""

    @abc.abstractmethod
    def add_raw(self, row): """Raw uplink (dict) -> id."""

    @abc.abstractmethod
    def add_report(self, row):
        """One stored interval (dict); its data ({"zones", "lines"[, "height_classes"]}) comes
        as JSON text, `data_json`, written once by the pipeline for either backend."""

    @abc.abstractmethod
    def add_event(self, row): ...

    @abc.abstractmethod
    def add_quarantine(self, row): ...

    @abc.abstractmethod
    def settle_downlinks(self, dev_eui, config_version, rejected, at):
        """Mark pending downlinks applied (version in force) or rejected; -> list of changes."""


class Store(abc.ABC):
    # registry
    @abc.abstractmethod
    def put_device(self, device, key=None, actor="system"): ...
    @abc.abstractmethod
    def get_device(self, dev_eui): ...
    @abc.abstractmethod
    def list_devices(self): ...
    @abc.abstractmethod
    def set_device_status(self, dev_eui, status, actor): ...
    @abc.abstractmethod
    def device_key(self, dev_eui): ...

    # ingest
    @abc.abstractmethod
    def batch(self): """Context manager yielding a Batch; commits on success."""

    # outbox
    @abc.abstractmethod
    def outbox_fetch(self, sink, limit, hold_s=0.0, now=None): ...
    @abc.abstractmethod
    def outbox_done(self, sink, items): ...
    @abc.abstractmethod
    def outbox_dead(self, sink, item, reason): ...
    @abc.abstractmethod
    def outbox_stats(self, sinks, now): ...
    @abc.abstractmethod
    def sink_state(self, sink, key, value=None): ...

    # operator surface
    @abc.abstractmethod
    def overview(self): ...
    @abc.abstractmethod
    def quarantine(self, limit=100): ...
    @abc.abstractmethod
    def reports(self, since=None, until=None, dev_eui=None, limit=None): ...
    @abc.abstractmethod
    def quarantine_counts(self): """{reason: n}"""
    @abc.abstractmethod
    def events(self, dev_eui=None, limit=100): ...
    @abc.abstractmethod
    def count(self, table): """Row count of reports, uplinks, quarantine, events, access_log or downlinks."""

    # retention, downlinks, access log
    @abc.abstractmethod
    def purge(self, raw_before): ...
    def purge_quarantine(self, before, max_bytes):
        """Delete quarantined messages older than `before`, then the oldest until the
        quarantine holds at most `max_bytes` (bodies and details). -> {"old": n, "over_size": n}"""
        raise NotImplementedError
    @abc.abstractmethod
    def add_downlink(self, row): ...
    @abc.abstractmethod
    def downlinks(self, dev_eui=None): ...
    @abc.abstractmethod
    def last_config_version(self, dev_eui): """Highest configuration version sent or reported."""
    @abc.abstractmethod
    def log_access(self, actor, action, detail): ...
    @abc.abstractmethod
    def verify_access_log(self): ...
    @abc.abstractmethod
    def access_log(self, limit=200): ...

    @abc.abstractmethod
    def schema_version(self): """-> (version in the database, version this code expects)."""
    @abc.abstractmethod
    def migrate(self): """Bring the schema to this code's version -> list of (version, description) applied."""

    def other_instances(self, instance):
        """Other gateway instances connected to this store now (names). A single-instance
        backend has none."""
        return []

    def close(self):
        pass
