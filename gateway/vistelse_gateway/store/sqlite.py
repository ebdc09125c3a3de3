"""SQLite backend (WAL mode): the embedded default.

One file holds the registry, raw uplinks, reports, events, quarantine,
outbox cursors, downlinks and the access log. The file and its -wal/-shm
companions are created mode 0600 (the tag keys are in it); the systemd unit
puts them in a StateDirectory only the service's dynamic user can read.
"""
import contextlib
import json
import os
import sqlite3
import threading
import time

from . import order
from .base import Batch, Store, StoreError, downlink_outcome, hex_eui
from .sql import SqlReadModels, SqlWrites, device_row

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS devices (
  dev_eui TEXT PRIMARY KEY,            -- 16 lowercase hex digits
  name TEXT NOT NULL DEFAULT '',
  site TEXT NOT NULL DEFAULT '',
  network TEXT NOT NULL,               -- chirpstack | tts
  application TEXT NOT NULL,           -- ChirpStack application id / TTS app@tenant
  tts_device_id TEXT,
  status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
  meta TEXT NOT NULL DEFAULT '{}',     -- zones, lines, location (JSON)
  register TEXT NOT NULL DEFAULT '{}', -- public register entry (JSON)
  created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS devices_tts ON devices (application, tts_device_id);
CREATE TABLE IF NOT EXISTS device_keys (dev_eui TEXT PRIMARY KEY, key BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS device_state (dev_eui TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uplinks (
  id INTEGER PRIMARY KEY, received_at REAL NOT NULL, source TEXT NOT NULL, topic TEXT,
  dev_eui TEXT, f_cnt INTEGER, f_port INTEGER, dedup_id TEXT, payload BLOB, body BLOB,
  outcome TEXT NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS uplinks_time ON uplinks (received_at);
CREATE TABLE IF NOT EXISTS reports (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  dev_eui TEXT NOT NULL, seq INTEGER NOT NULL, seq16 INTEGER NOT NULL, span INTEGER NOT NULL,
  interval_s INTEGER NOT NULL, start_at REAL NOT NULL, end_at REAL NOT NULL,
  time_estimated INTEGER NOT NULL, received_at REAL NOT NULL, uplink_id INTEGER,
  f_cnt INTEGER, content_hash INTEGER NOT NULL, config_version INTEGER, data TEXT NOT NULL,
  stored_at REAL NOT NULL,
  UNIQUE (dev_eui, seq));
CREATE INDEX IF NOT EXISTS reports_time ON reports (end_at);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY, at REAL NOT NULL, dev_eui TEXT, kind TEXT NOT NULL, source TEXT, body TEXT);
CREATE INDEX IF NOT EXISTS events_dev ON events (dev_eui, kind, at);
CREATE TABLE IF NOT EXISTS quarantine (
  id INTEGER PRIMARY KEY, at REAL NOT NULL, source TEXT, topic TEXT, dev_eui TEXT,
  reason TEXT NOT NULL, detail TEXT, uplink_id INTEGER, body BLOB);
CREATE INDEX IF NOT EXISTS quarantine_time ON quarantine (at);
CREATE TABLE IF NOT EXISTS outbox_cursor (sink TEXT PRIMARY KEY, position INTEGER NOT NULL, updated_at REAL);
CREATE TABLE IF NOT EXISTS outbox_dead (
  id INTEGER PRIMARY KEY, sink TEXT NOT NULL, report_id INTEGER NOT NULL, reason TEXT, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sink_state (sink TEXT, key TEXT, value TEXT, PRIMARY KEY (sink, key));
CREATE TABLE IF NOT EXISTS downlinks (
  id INTEGER PRIMARY KEY, dev_eui TEXT NOT NULL, config_version INTEGER NOT NULL, config TEXT NOT NULL,
  via TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL, resolved_at REAL, detail TEXT);
CREATE INDEX IF NOT EXISTS downlinks_dev ON downlinks (dev_eui, status);
CREATE TABLE IF NOT EXISTS access_log (
  id INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
"""
# (version, what it changes, script). A database is brought up to date when it is
# opened: one embedded instance, so upgrading is replacing the code and restarting.
MIGRATIONS = [(1, "initial schema", SCHEMA),
              (2, "per-device order towards the sinks (store/order.py)", """
CREATE TABLE IF NOT EXISTS outbox_wait (
  sink TEXT NOT NULL, report_id INTEGER NOT NULL, dev_eui TEXT NOT NULL, PRIMARY KEY (sink, report_id));
CREATE INDEX IF NOT EXISTS outbox_wait_device ON outbox_wait (sink, dev_eui, report_id);
CREATE TABLE IF NOT EXISTS outbox_order (sink TEXT NOT NULL, dev_eui TEXT NOT NULL, next_seq INTEGER,
  newest_at REAL, PRIMARY KEY (sink, dev_eui));
""")]
_STATE_JSON = json.JSONEncoder(separators=(",", ":")).encode     # json.dumps would build an encoder per call
SCHEMA_VERSION = MIGRATIONS[-1][0]
_hex = hex_eui


SQL_RAW = ("INSERT INTO uplinks (id, received_at, source, topic, dev_eui, f_cnt, f_port, dedup_id, payload, body,"
           " outcome, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
SQL_REPORT = ("INSERT INTO reports (dev_eui, seq, seq16, span, interval_s, start_at, end_at, time_estimated, received_at,"
              " uplink_id, f_cnt, content_hash, config_version, data, stored_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
SQL_EVENT = "INSERT INTO events (at, dev_eui, kind, source, body) VALUES (?,?,?,?,?)"
SQL_QUARANTINE = "INSERT INTO quarantine (at, source, topic, dev_eui, reason, detail, uplink_id, body) VALUES (?,?,?,?,?,?,?,?)"


_MULTI = {}


def _insert_rows(db, sql, rows):
    """Rows as multi-row INSERTs (VALUES (...),(...),...): one statement step per chunk, not
    one per row. Each step releases the interpreter lock, which the MQTT client's thread
    then takes: per row, that is a hand-over and back for every row of a batch."""
    head, _, group = sql.rpartition(" VALUES ")
    width = len(rows[0])
    per = max(1, min(256, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        text = _MULTI.get((sql, len(chunk)))
        if text is None:
            text = _MULTI[sql, len(chunk)] = "%s VALUES %s" % (head, ",".join([group] * len(chunk)))
        db.execute(text, [value for row in chunk for value in row])


class _SqliteBatch(Batch):
    """One ingest transaction. The registry and device-state caches live in the
    store: the pipeline is the only writer of device_state, and any registry
    change bumps meta.registry_generation, which each batch checks once.

    Rows are collected and written together (one executemany per table) when the
    batch is flushed, or before a read of the reports table, so reads see this
    batch's own rows. Raw uplink ids are assigned here (max(id) + 1 onwards, what
    SQLite would assign): the transaction is the only writer (BEGIN IMMEDIATE)."""

    def __init__(self, db, store=None):
        self.db = db
        self.store = store
        self.dirty = {}
        self.rows = {SQL_RAW: [], SQL_REPORT: [], SQL_EVENT: [], SQL_QUARANTINE: []}
        self.next_uplink_id = None
        self.pending = {}       # devices named in lock_devices -> [(downlink id, config_version)] pending
        if store is not None:
            gen = db.execute("SELECT value FROM meta WHERE key='registry_generation'").fetchone()
            gen = gen[0] if gen else "0"
            if gen != store._registry_gen:
                store._registry.clear()
                store._keys.clear()
                store._registry_gen = gen

    def device(self, dev_eui):
        eui = _hex(dev_eui)
        cache = self.store._registry if self.store is not None else None
        if cache is not None and eui in cache:
            return cache[eui]
        row = device_row(self.db.execute("SELECT * FROM devices WHERE dev_eui=?", (eui,)).fetchone())
        if cache is not None and row is not None:
            cache[eui] = row
        return row

    def device_by_tts_id(self, application, device_id):
        app = application.split("@")[0]
        rows = self.db.execute("SELECT * FROM devices WHERE network='tts' AND tts_device_id=? AND "
                               "(application=? OR application LIKE ?)", (device_id, application, app + "@%")).fetchall()
        return device_row(rows[0]) if len(rows) == 1 else None

    def device_key(self, dev_eui):
        eui = _hex(dev_eui)
        keys = self.store._keys if self.store is not None else None
        if keys is not None and eui in keys:
            return keys[eui]
        row = self.db.execute("SELECT key FROM device_keys WHERE dev_eui=?", (eui,)).fetchone()
        key = bytes(row[0]) if row else None
        if keys is not None and key is not None:
            keys[eui] = key
        return key

    def lock_devices(self, dev_euis):
        # BEGIN IMMEDIATE already holds the only write lock; read the devices' pending downlinks at once
        todo = sorted({_hex(e) for e in dev_euis} - set(self.pending))
        for i in range(0, len(todo), 500):
            chunk = todo[i:i + 500]
            for eui in chunk:
                self.pending[eui] = []
            for dl_id, eui, version in self.db.execute(
                    "SELECT id, dev_eui, config_version FROM downlinks WHERE status='pending' AND dev_eui IN (%s)"
                    " ORDER BY id" % ",".join("?" * len(chunk)), chunk):
                self.pending[eui].append((dl_id, version))

    def device_state(self, dev_eui):
        eui = _hex(dev_eui)
        if eui in self.dirty:
            return self.dirty[eui]
        cache = self.store._states if self.store is not None else None
        if cache is not None and eui in cache:
            return dict(cache[eui])
        row = self.db.execute("SELECT state FROM device_state WHERE dev_eui=?", (eui,)).fetchone()
        state = json.loads(row[0]) if row else None
        if cache is not None and state is not None:
            cache[eui] = state
            return dict(state)
        return state

    def put_device_state(self, dev_eui, state):
        self.dirty[_hex(dev_eui)] = state

    def send_rows(self):
        for sql, rows in self.rows.items():
            if rows:
                _insert_rows(self.db, sql, rows)
                rows.clear()

    def flush(self):
        self.send_rows()
        if self.dirty:
            _insert_rows(self.db, "INSERT OR REPLACE INTO device_state (dev_eui, state) VALUES (?,?)",
                         [(eui, _STATE_JSON(state)) for eui, state in self.dirty.items()])
        if self.store is not None:
            self.store._states.update(self.dirty)
        self.dirty = {}

    def stored_intervals(self, dev_eui, seqs):
        if not seqs:
            return {}
        lo, hi = min(seqs), max(seqs)
        self.send_rows()
        rows = self.db.execute("SELECT seq, content_hash, f_cnt FROM reports WHERE dev_eui=? AND seq BETWEEN ? AND ?",
                               (_hex(dev_eui), lo, hi)).fetchall()
        wanted = set(seqs)
        return {r[0]: (r[1], r[2]) for r in rows if r[0] in wanted}

    def neighbour(self, dev_eui, seq, before=True):
        if before:
            sql = ("SELECT seq, span, interval_s, end_at FROM reports WHERE dev_eui=? AND seq<? AND time_estimated=0 "
                   "ORDER BY seq DESC LIMIT 1")
        else:
            sql = ("SELECT seq, span, interval_s, end_at FROM reports WHERE dev_eui=? AND seq>? AND time_estimated=0 "
                   "ORDER BY seq ASC LIMIT 1")
        self.send_rows()
        row = self.db.execute(sql, (_hex(dev_eui), seq)).fetchone()
        return tuple(row) if row else None

    def add_raw(self, r):
        if self.next_uplink_id is None:
            self.next_uplink_id = self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM uplinks").fetchone()[0]
        uid = self.next_uplink_id
        self.next_uplink_id += 1
        self.rows[SQL_RAW].append(
            (uid, r["received_at"], r["source"], r.get("topic"), r.get("dev_eui"), r.get("f_cnt"), r.get("f_port"),
             r.get("dedup_id"), r.get("payload"), r.get("body"), r["outcome"], r.get("reason")))
        return uid

    def add_report(self, r):
        self.rows[SQL_REPORT].append(
            (r["dev_eui"], r["seq"], r["seq16"], r["span"], r["interval_s"], r["start_at"], r["end_at"],
             int(r["time_estimated"]), r["received_at"], r.get("uplink_id"), r.get("f_cnt"), r["content_hash"],
             r.get("config_version"), r["data_json"], time.time()))

    def add_event(self, r):
        self.rows[SQL_EVENT].append((r["at"], r.get("dev_eui"), r["kind"], r.get("source"),
                                     json.dumps(r.get("body") or {})))

    def add_quarantine(self, r):
        self.rows[SQL_QUARANTINE].append(
            (r["at"], r.get("source"), r.get("topic"), r.get("dev_eui"), r["reason"], r.get("detail", "")[:1000],
             r.get("uplink_id"), r.get("body")))

    def settle_downlinks(self, dev_eui, config_version, rejected, at):
        eui = _hex(dev_eui)
        changes = []
        if eui not in self.pending:
            self.lock_devices([eui])
        keep = []
        for dl_id, version in self.pending[eui]:
            status = downlink_outcome(version, config_version, rejected)
            if status:
                self.db.execute("UPDATE downlinks SET status=?, resolved_at=? WHERE id=?", (status, at, dl_id))
                changes.append((dl_id, version, status))
            else:
                keep.append((dl_id, version))
        self.pending[eui] = keep
        return changes


class SqliteStore(SqlReadModels, SqlWrites, Store):
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path, synchronous="full"):
        self.path = str(path)
        if synchronous.lower() not in ("full", "normal", "extra"):
            raise StoreError("synchronous must be full, normal or extra")
        self.synchronous = synchronous.upper()
        self._local = threading.local()
        self._all = []
        self._lock = threading.Lock()
        self._registry, self._keys, self._states, self._registry_gen = {}, {}, {}, None
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StoreError("directory %s does not exist" % directory)
        old = os.umask(0o077)
        try:
            db = self._conn()
            self.migrated = self.migrate()
            # touch the WAL files now, under the strict umask
            db.execute("SELECT count(*) FROM meta").fetchone()
        finally:
            os.umask(old)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.chmod(self.path + suffix, 0o600)

    # -- connections ------------------------------------------------------
    def _conn(self):
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            except sqlite3.Error as exc:
                raise StoreError("cannot open %s: %s" % (self.path, exc)) from None
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=%s" % self.synchronous)
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    @contextlib.contextmanager
    def _tx(self, db=None):
        db = db or self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self):
        with self._lock:
            for db in self._all:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
            self._all = []
        self._local = threading.local()

    def _fetch(self, sql, args=()):
        return [dict(r) for r in self._conn().execute(sql, args)]

    def _sql_tx(self):
        return self._tx()       # BEGIN IMMEDIATE: one writer at a time, log appends included

    # -- schema -------------------------------------------------------------
    def schema_version(self):
        db = self._conn()
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
            return 0, SCHEMA_VERSION
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return (int(row[0]) if row else 0), SCHEMA_VERSION

    def migrate(self):
        current, latest = self.schema_version()
        if current > latest:
            raise StoreError("the database schema is version %d, newer than this gateway's (%d): "
                             "run the newer gateway, or restore the backup taken before the upgrade"
                             % (current, latest))
        applied = []
        db = self._conn()
        for version, description, script in MIGRATIONS:
            if version <= current:
                continue
            # one transaction per step: a failed step leaves the previous version intact
            db.executescript("BEGIN IMMEDIATE;\n%s\nINSERT OR REPLACE INTO meta VALUES ('schema_version', '%d');"
                             "\nCOMMIT;" % (script, version))
            applied.append((version, description))
        return applied

    # -- registry ----------------------------------------------------------
    def device_key(self, dev_eui):
        return _SqliteBatch(self._conn()).device_key(dev_eui)

    # -- ingest -------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self):
        try:
            with self._tx() as db:
                b = _SqliteBatch(db, self)
                yield b
                b.flush()
        except BaseException:
            self._states.clear()       # the cache may hold states of the rolled-back batch
            raise

    # -- outbox -------------------------------------------------------------
    # A report waits for a sink in outbox_wait, taken in from the report log past the
    # sink's cursor when the sink's worker fetches; outbox_order keeps each device's
    # mark, so late intervals go out in sequence order (order.py).
    def _cursor(self, db, sink):
        row = db.execute("SELECT position FROM outbox_cursor WHERE sink=?", (sink,)).fetchone()
        return row[0] if row else 0

    def outbox_fetch(self, sink, limit, hold_s=0.0, now=None):
        now = time.time() if now is None else now
        db = self._conn()
        pos = self._cursor(db, sink)
        if db.execute("SELECT 1 FROM reports WHERE id > ? LIMIT 1", (pos,)).fetchone():
            with self._tx(db):
                pos = self._cursor(db, sink)
                last = db.execute("SELECT max(id) FROM reports").fetchone()[0]
                db.execute("INSERT OR IGNORE INTO outbox_wait (sink, report_id, dev_eui) SELECT ?, id, dev_eui"
                           " FROM reports WHERE id > ? AND id <= ?", (sink, pos, last))
                db.execute("INSERT INTO outbox_cursor (sink, position, updated_at) VALUES (?,?,?) ON CONFLICT (sink)"
                           " DO UPDATE SET position=excluded.position, updated_at=excluded.updated_at",
                           (sink, last, now))
        marks = {r[0]: (r[1], r[2]) for r in db.execute("SELECT dev_eui, next_seq, newest_at FROM outbox_order"
                                                        " WHERE sink=?", (sink,))}
        # the devices whose oldest waiting report may go now (with a hold: order.eligible), oldest first
        held = (" JOIN reports r ON r.id = w.report_id LEFT JOIN outbox_order m ON m.sink = w.sink AND"
                " m.dev_eui = w.dev_eui WHERE (%s) AND" % order.eligible("?")) if hold_s > 0 else " WHERE"
        devices = [r[0] for r in db.execute(
            "SELECT w.dev_eui FROM outbox_wait w" + held + " w.sink=? GROUP BY w.dev_eui ORDER BY min(w.report_id)"
            " LIMIT ?", ((now - hold_s,) if hold_s > 0 else ()) + (sink, limit))]
        if not devices:
            return []
        columns = "r.*, d.name AS device_name, d.site AS site, d.meta AS device_meta"
        tables = (" FROM outbox_wait w JOIN reports r ON r.id = w.report_id LEFT JOIN devices d ON d.dev_eui ="
                  " r.dev_eui WHERE w.sink=? AND w.dev_eui IN (%s)" % ",".join("?" * len(devices)))
        if hold_s > 0:              # each device's first `limit` by sequence number
            rows = db.execute("SELECT * FROM (SELECT " + columns + ", row_number() OVER (PARTITION BY r.dev_eui"
                              " ORDER BY r.seq) AS nth" + tables + ") WHERE nth <= ? ORDER BY dev_eui, seq",
                              [sink] + devices + [limit]).fetchall()
        else:
            rows = db.execute("SELECT " + columns + tables + " ORDER BY w.report_id LIMIT ?",
                              [sink] + devices + [limit]).fetchall()
        items = order.release_all(marks, [dict(r) for r in rows], now, hold_s, limit)
        for item in items:
            item["data"] = json.loads(item["data"])
            item["device_meta"] = json.loads(item["device_meta"] or "{}")
        return items

    def outbox_done(self, sink, items):
        if not items:
            return
        with self._tx() as db:
            db.executemany("DELETE FROM outbox_wait WHERE sink=? AND report_id=?", [(sink, i["id"]) for i in items])
            for eui, (mark, newest) in order.marks_after(items).items():
                db.execute("INSERT INTO outbox_order (sink, dev_eui, next_seq, newest_at) VALUES (?,?,?,?) ON CONFLICT"
                           " (sink, dev_eui) DO UPDATE SET next_seq = max(coalesce(next_seq, 0), excluded.next_seq),"
                           " newest_at = max(coalesce(newest_at, 0), excluded.newest_at)", (sink, eui, mark, newest))

    def outbox_dead(self, sink, item, reason):
        with self._tx() as db:
            db.execute("INSERT INTO outbox_dead (sink, report_id, reason, at) VALUES (?,?,?,?)",
                       (sink, item["id"], str(reason)[:500], time.time()))

    def outbox_stats(self, sinks, now):
        db = self._conn()
        out = {}
        for sink in sinks:
            pos = self._cursor(db, sink)
            new = db.execute("SELECT count(*), min(stored_at) FROM reports WHERE id > ?", (pos,)).fetchone()
            wait = db.execute("SELECT count(*), min(r.stored_at) FROM outbox_wait w JOIN reports r ON r.id = w.report_id"
                              " WHERE w.sink=?", (sink,)).fetchone()
            oldest = min([t for t in (new[1], wait[1]) if t is not None] or [None]) if (new[0] or wait[0]) else None
            dead = db.execute("SELECT count(*) FROM outbox_dead WHERE sink=?", (sink,)).fetchone()[0]
            out[sink] = {"depth": new[0] + wait[0], "age_s": (now - oldest) if oldest else 0.0, "dead": dead,
                         "position": pos}
        return out
