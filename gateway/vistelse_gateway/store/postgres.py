"""PostgreSQL backend (psycopg 3): one database behind several gateway instances.

What keeps several writers correct (each instance has its own connections):

* ingest: a batch locks the rows of the devices it touches in `devices`
  (SELECT ... ORDER BY dev_eui FOR NO KEY UPDATE, in one fixed order, so two
  instances wait for each other instead of deadlocking), then reads and
  writes their state. The unique (dev_eui, seq) constraint on reports is the
  last word on duplicates: two instances can never both store an interval.
* outbox: one row per (sink, report) waiting. A sink worker claims *devices*
  (one `outbox_claim` row per sink and device, FOR UPDATE SKIP LOCKED), takes
  their waiting reports in sequence order, held back behind a missing one
  (order.py: outbox_mark keeps the device's mark), and keeps the claim until
  it has settled them, so another instance never delivers a later report of
  the same device first. A worker that dies releases its claims with its
  connection (and the mark it moved rolls back with them).
* access log: appends take a transaction-level advisory lock, so the hash
  chain has one head and consecutive ids whatever instance writes.
* schema: versioned migrations (`vistelse gateway migrate`); an instance
  refuses to start on a schema other than its own.
"""
import contextlib
import json
import threading
import time
import zlib

import psycopg
from psycopg.rows import dict_row

from . import order
from .base import Batch, Store, StoreError, downlink_outcome, hex_eui
from .sql import SqlReadModels, SqlWrites, device_row

# advisory lock keys (pg_advisory_xact_lock(bigint)): fixed, derived from names
LOCK_ACCESS_LOG = zlib.crc32(b"vistelse.access_log")
LOCK_MIGRATE = zlib.crc32(b"vistelse.migrate")

SCHEMA_1 = """
CREATE TABLE meta (key text PRIMARY KEY, value text);
CREATE TABLE devices (
  dev_eui text PRIMARY KEY CHECK (dev_eui ~ '^[0-9a-f]{16}$'),
  name text NOT NULL DEFAULT '', site text NOT NULL DEFAULT '',
  network text NOT NULL CHECK (network IN ('chirpstack', 'tts')),
  application text NOT NULL, tts_device_id text,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
  meta jsonb NOT NULL DEFAULT '{}', register jsonb NOT NULL DEFAULT '{}',
  created_at double precision NOT NULL, updated_at double precision NOT NULL);
CREATE UNIQUE INDEX devices_tts ON devices (application, tts_device_id);
CREATE TABLE device_keys (dev_eui text PRIMARY KEY REFERENCES devices, key bytea NOT NULL CHECK (length(key) = 32));
CREATE TABLE device_state (dev_eui text PRIMARY KEY REFERENCES devices, state jsonb NOT NULL);
CREATE TABLE uplinks (
  id bigserial PRIMARY KEY, received_at double precision NOT NULL, source text NOT NULL, topic text,
  dev_eui text, f_cnt bigint, f_port integer, dedup_id text, payload bytea, body bytea,
  outcome text NOT NULL, reason text);
CREATE INDEX uplinks_time ON uplinks (received_at);
CREATE TABLE reports (
  id bigserial PRIMARY KEY,
  dev_eui text NOT NULL REFERENCES devices, seq bigint NOT NULL, seq16 integer NOT NULL, span integer NOT NULL,
  interval_s integer NOT NULL, start_at double precision NOT NULL, end_at double precision NOT NULL,
  time_estimated integer NOT NULL, received_at double precision NOT NULL, uplink_id bigint,
  f_cnt bigint, content_hash bigint NOT NULL, config_version integer, data jsonb NOT NULL,
  stored_at double precision NOT NULL,
  CONSTRAINT reports_once UNIQUE (dev_eui, seq));
CREATE INDEX reports_time ON reports (end_at);
CREATE TABLE events (
  id bigserial PRIMARY KEY, at double precision NOT NULL, dev_eui text, kind text NOT NULL, source text,
  body jsonb);
CREATE INDEX events_dev ON events (dev_eui, kind, at);
CREATE TABLE quarantine (
  id bigserial PRIMARY KEY, at double precision NOT NULL, source text, topic text, dev_eui text,
  reason text NOT NULL, detail text, uplink_id bigint, body bytea);
CREATE INDEX quarantine_time ON quarantine (at);
CREATE TABLE outbox_sinks (sink text PRIMARY KEY, created_at double precision NOT NULL);
CREATE TABLE outbox (
  sink text NOT NULL REFERENCES outbox_sinks, report_id bigint NOT NULL REFERENCES reports ON DELETE CASCADE,
  dev_eui text NOT NULL, PRIMARY KEY (sink, report_id));
CREATE INDEX outbox_device ON outbox (sink, dev_eui, report_id);
CREATE TABLE outbox_claim (sink text NOT NULL, dev_eui text NOT NULL, PRIMARY KEY (sink, dev_eui));
CREATE TABLE outbox_delivered (sink text PRIMARY KEY, n bigint NOT NULL, updated_at double precision);
CREATE TABLE outbox_dead (
  id bigserial PRIMARY KEY, sink text NOT NULL, report_id bigint NOT NULL, reason text,
  at double precision NOT NULL);
CREATE TABLE sink_state (sink text, key text, value text, PRIMARY KEY (sink, key));
CREATE TABLE downlinks (
  id bigserial PRIMARY KEY, dev_eui text NOT NULL, config_version integer NOT NULL, config jsonb NOT NULL,
  via text NOT NULL, status text NOT NULL, created_at double precision NOT NULL,
  resolved_at double precision, detail text);
CREATE INDEX downlinks_dev ON downlinks (dev_eui, status);
CREATE TABLE access_log (
  id bigint PRIMARY KEY, at double precision NOT NULL, actor text NOT NULL, action text NOT NULL,
  detail text NOT NULL, prev_hash text NOT NULL, hash text NOT NULL UNIQUE);
INSERT INTO meta VALUES ('registry_generation', '0');
"""

# (version, what it changes, SQL). Applied by `vistelse gateway migrate`, each in
# one transaction; the version is recorded in schema_migrations.
MIGRATIONS = [(1, "initial schema", SCHEMA_1),
              # each device's mark per sink (store/order.py), written only by the holder of its claim;
              # not in outbox_claim, whose rows ingest inserts ON CONFLICT DO NOTHING: an update
              # there would make ingest wait for the sink's delivery
              (2, "per-device order towards the sinks", """
CREATE TABLE outbox_mark (sink text NOT NULL, dev_eui text NOT NULL, next_seq bigint NOT NULL,
  newest_at double precision NOT NULL, PRIMARY KEY (sink, dev_eui));
""")]
SCHEMA_VERSION = MIGRATIONS[-1][0]
ID_BLOCK = 256


def _dumps(value):
    return json.dumps(value, separators=(",", ":"))


COPY_RAW = ("COPY uplinks (id, received_at, source, topic, dev_eui, f_cnt, f_port, dedup_id, payload, body, outcome,"
            " reason) FROM STDIN")
COPY_REPORT = ("COPY reports (id, dev_eui, seq, seq16, span, interval_s, start_at, end_at, time_estimated, received_at,"
               " uplink_id, f_cnt, content_hash, config_version, data, stored_at) FROM STDIN")
# every report waits for every sink: outbox rows and the (sink, device) claim rows in one
# statement, one snapshot of outbox_sinks (a sink being registered holds SHARE on reports,
# so it cannot commit between this batch's COPY and this statement)
SQL_OUTBOX = ("WITH s AS (SELECT sink FROM outbox_sinks),"
              " o AS (INSERT INTO outbox (sink, report_id, dev_eui) SELECT s.sink, r.id, r.dev_eui"
              " FROM s, unnest(%s::bigint[], %s::text[]) AS r(id, dev_eui))"
              " INSERT INTO outbox_claim (sink, dev_eui) SELECT s.sink, d FROM s, unnest(%s::text[]) AS d"
              " ON CONFLICT DO NOTHING")
SQL_EVENT = "INSERT INTO events (at, dev_eui, kind, source, body) VALUES (%s,%s,%s,%s,%s::jsonb)"
SQL_QUARANTINE = ("INSERT INTO quarantine (at, source, topic, dev_eui, reason, detail, uplink_id, body)"
                  " VALUES (%s,%s,%s,%s,%s,%s,%s,%s)")


class _PgBatch(Batch):
    """One ingest transaction. Rows are collected and sent together (COPY for uplinks
    and reports, ids drawn from their sequences in blocks): a few round trips per
    batch, not several per uplink. A read of the reports table sends what is collected
    first, so it sees this batch's own rows."""

    def __init__(self, store, conn):
        self.store, self.conn = store, conn
        self.states = {}        # locked devices -> state (None: none stored yet)
        self.dirty = {}
        self.pending = {}       # locked devices -> [(downlink id, config_version)] pending
        self._ids = {"uplinks_id_seq": [], "reports_id_seq": []}
        self.rows = {COPY_RAW: [], COPY_REPORT: [], SQL_EVENT: [], SQL_QUARANTINE: []}
        gen = conn.execute("SELECT value FROM meta WHERE key='registry_generation'").fetchone()["value"]
        if gen != store._registry_gen:
            store._registry.clear()
            store._keys.clear()
            store._registry_gen = gen

    # registry (cached per process until the registry generation changes)
    def device(self, dev_eui):
        eui = hex_eui(dev_eui)
        cache = self.store._registry
        if eui in cache:
            return cache[eui]
        row = device_row(self.conn.execute("SELECT * FROM devices WHERE dev_eui=%s", (eui,)).fetchone())
        if row is not None:
            cache[eui] = row
        return row

    def device_by_tts_id(self, application, device_id):
        app = application.split("@")[0]
        rows = self.conn.execute("SELECT * FROM devices WHERE network='tts' AND tts_device_id=%s AND "
                                 "(application=%s OR application LIKE %s)",
                                 (device_id, application, app + "@%")).fetchall()
        return device_row(rows[0]) if len(rows) == 1 else None

    def device_key(self, dev_eui):
        eui = hex_eui(dev_eui)
        keys = self.store._keys
        if eui in keys:
            return keys[eui]
        row = self.conn.execute("SELECT key FROM device_keys WHERE dev_eui=%s", (eui,)).fetchone()
        key = bytes(row["key"]) if row else None
        if key is not None:
            keys[eui] = key
        return key

    # state, under the device row lock
    def lock_devices(self, dev_euis):
        todo = sorted({hex_eui(e) for e in dev_euis} - set(self.states))
        if not todo:
            return
        for ids in self._ids.values():
            # ids drawn before this lock could be lower than those of a batch that wrote these
            # devices meanwhile: draw afresh, so report ids follow commit order per device
            ids.clear()
        rows = self.conn.execute(
            "SELECT d.dev_eui, s.state FROM devices d LEFT JOIN device_state s ON s.dev_eui = d.dev_eui"
            " WHERE d.dev_eui = ANY(%s) ORDER BY d.dev_eui FOR NO KEY UPDATE OF d", (todo,)).fetchall()
        for r in rows:
            self.states[r["dev_eui"]] = r["state"]
            self.pending[r["dev_eui"]] = []
        for r in self.conn.execute("SELECT id, dev_eui, config_version FROM downlinks WHERE status='pending'"
                                   " AND dev_eui = ANY(%s) ORDER BY id", (todo,)):
            self.pending[r["dev_eui"]].append((r["id"], r["config_version"]))

    def device_state(self, dev_eui):
        eui = hex_eui(dev_eui)
        if eui in self.dirty:
            return self.dirty[eui]
        if eui not in self.states:
            self.lock_devices([eui])
        state = self.states.get(eui)
        return dict(state) if state is not None else None

    def put_device_state(self, dev_eui, state):
        self.dirty[hex_eui(dev_eui)] = state

    def send_rows(self):
        with self.conn.cursor() as cur:
            for sql, rows in self.rows.items():
                if not rows:
                    continue
                if sql.startswith("COPY"):
                    with cur.copy(sql) as copy:
                        for row in rows:
                            copy.write_row(row)
                else:
                    cur.executemany(sql, rows)
                if sql is COPY_REPORT:
                    devices = sorted({r[1] for r in rows})
                    cur.execute(SQL_OUTBOX, ([r[0] for r in rows], [r[1] for r in rows], devices))
                rows.clear()

    def flush(self):
        self.send_rows()
        if self.dirty:
            with self.conn.cursor() as cur:
                cur.executemany("INSERT INTO device_state (dev_eui, state) VALUES (%s, %s::jsonb) ON CONFLICT"
                                " (dev_eui) DO UPDATE SET state = excluded.state",
                                [(eui, _dumps(st)) for eui, st in self.dirty.items()])
        self.dirty = {}

    def stored_intervals(self, dev_eui, seqs):
        if not seqs:
            return {}
        self.send_rows()
        rows = self.conn.execute("SELECT seq, content_hash, f_cnt FROM reports WHERE dev_eui=%s AND seq = ANY(%s)",
                                 (hex_eui(dev_eui), list(seqs))).fetchall()
        return {r["seq"]: (r["content_hash"], r["f_cnt"]) for r in rows}

    def neighbour(self, dev_eui, seq, before=True):
        if before:
            sql = ("SELECT seq, span, interval_s, end_at FROM reports WHERE dev_eui=%s AND seq<%s AND time_estimated=0"
                   " ORDER BY seq DESC LIMIT 1")
        else:
            sql = ("SELECT seq, span, interval_s, end_at FROM reports WHERE dev_eui=%s AND seq>%s AND time_estimated=0"
                   " ORDER BY seq ASC LIMIT 1")
        self.send_rows()
        row = self.conn.execute(sql, (hex_eui(dev_eui), seq)).fetchone()
        return (row["seq"], row["span"], row["interval_s"], row["end_at"]) if row else None

    def _next_id(self, sequence):
        # ids come from the sequence in blocks, so the rows can be sent later in one go
        ids = self._ids[sequence]
        if not ids:
            rows = self.conn.execute("SELECT nextval(%s) AS id FROM generate_series(1, %s)",
                                     (sequence, ID_BLOCK)).fetchall()
            ids.extend(r["id"] for r in reversed(rows))
        return ids.pop()

    def add_raw(self, r):
        uid = self._next_id("uplinks_id_seq")
        self.rows[COPY_RAW].append(
            (uid, r["received_at"], r["source"], r.get("topic"), r.get("dev_eui"), r.get("f_cnt"), r.get("f_port"),
             r.get("dedup_id"), r.get("payload"), r.get("body"), r["outcome"], r.get("reason")))
        return uid

    def add_report(self, r):
        self.rows[COPY_REPORT].append(
            (self._next_id("reports_id_seq"), r["dev_eui"], r["seq"], r["seq16"], r["span"], r["interval_s"], r["start_at"], r["end_at"],
             int(r["time_estimated"]), r["received_at"], r.get("uplink_id"), r.get("f_cnt"), r["content_hash"],
             r.get("config_version"), r["data_json"], time.time()))

    def add_event(self, r):
        self.rows[SQL_EVENT].append((r["at"], r.get("dev_eui"), r["kind"], r.get("source"), json.dumps(r.get("body") or {})))

    def add_quarantine(self, r):
        self.rows[SQL_QUARANTINE].append(
            (r["at"], r.get("source"), r.get("topic"), r.get("dev_eui"), r["reason"], r.get("detail", "")[:1000],
             r.get("uplink_id"), r.get("body")))

    def settle_downlinks(self, dev_eui, config_version, rejected, at):
        eui = hex_eui(dev_eui)
        if eui not in self.pending:
            self.lock_devices([eui])
        changes, keep = [], []
        for did, version in self.pending.get(eui, []):
            status = downlink_outcome(version, config_version, rejected)
            if status is None:
                keep.append((did, version))
                continue
            self.conn.execute("UPDATE downlinks SET status=%s, resolved_at=%s WHERE id=%s", (status, at, did))
            changes.append((did, version, status))
        self.pending[eui] = keep
        return changes


class _Qmark:
    """`?` placeholders on a psycopg connection, for the SQL shared with SQLite (store/sql.py)."""

    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql, args=()):
        return self.conn.execute(sql.replace("%", "%%").replace("?", "%s"), args)


class PostgresStore(SqlReadModels, SqlWrites, Store):
    integrity_errors = (psycopg.errors.UniqueViolation,)

    def __init__(self, url, migrate=False, connect_timeout=10, instance=None):
        self.url = url
        # visible to the other instances in pg_stat_activity (other_instances)
        self.application_name = "vistelse-gateway/%s" % instance if instance else "vistelse-gateway"
        self.connect_timeout = connect_timeout
        self._local = threading.local()
        self._all = []
        self._lock = threading.Lock()
        self._registry, self._keys, self._registry_gen = {}, {}, None
        self.migrated = self.migrate() if migrate else []
        current, latest = self.schema_version()
        if current != latest:
            raise StoreError(
                "the database schema is version %d, this gateway needs %d: %s" % (
                    current, latest, "run `vistelse gateway migrate` (docs/gateway.md, Upgrading)" if current < latest
                    else "this gateway is older than the database; upgrade it"))

    # -- connections ------------------------------------------------------
    def _conn(self, side=False):
        attr = "side" if side else "conn"
        conn = getattr(self._local, attr, None)
        if conn is not None and (conn.closed or conn.broken):
            conn = None
        if conn is None:
            try:
                conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                       connect_timeout=self.connect_timeout, application_name=self.application_name)
            except psycopg.Error as exc:
                raise StoreError("cannot connect to PostgreSQL: %s" % str(exc).strip()) from None
            setattr(self._local, attr, conn)
            if not side:
                self._local.claim = None
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _tx(self):
        # a sink that writes (sink_state) while its worker holds an outbox claim writes
        # on a second connection: its write does not wait for, or vanish with, the claim
        conn = self._conn(side=getattr(self._local, "claim", None) is not None)
        with conn.transaction():
            yield conn

    def close(self):
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except psycopg.Error:
                    pass
            self._all = []
        self._local = threading.local()

    def other_instances(self, instance):
        rows = self._conn().execute(
            "SELECT DISTINCT application_name AS a FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE 'vistelse-gateway/%%' AND application_name <> %s",
            ("vistelse-gateway/%s" % instance,)).fetchall()
        return sorted(r["a"].split("/", 1)[1] for r in rows)

    def _fetch(self, sql, args=()):
        return _Qmark(self._conn()).execute(sql, args).fetchall()

    @contextlib.contextmanager
    def _sql_tx(self):
        with self._tx() as conn:
            yield _Qmark(conn)

    def _lock_log(self, db):
        # serialised across instances: one head, consecutive ids (released with the transaction)
        db.execute("SELECT pg_advisory_xact_lock(?)", (LOCK_ACCESS_LOG,))

    def _lock_device(self, db, eui):
        db.execute("SELECT 1 FROM devices WHERE dev_eui=? FOR NO KEY UPDATE", (eui,))

    # -- schema -------------------------------------------------------------
    def schema_version(self):
        row = self._conn().execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present").fetchone()
        if not row["present"]:
            return 0, SCHEMA_VERSION
        row = self._conn().execute("SELECT max(version) AS v FROM schema_migrations").fetchone()
        return (row["v"] or 0), SCHEMA_VERSION

    def migrate(self):
        applied = []
        with self._tx() as conn:
            # one migrator at a time, however many instances start at once
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_MIGRATE,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                         " description text NOT NULL, applied_at double precision NOT NULL)")
            current = conn.execute("SELECT max(version) AS v FROM schema_migrations").fetchone()["v"] or 0
            if current > SCHEMA_VERSION:
                raise StoreError("the database schema is version %d, newer than this gateway's (%d)"
                                 % (current, SCHEMA_VERSION))
            for version, description, sql in MIGRATIONS:
                if version <= current:
                    continue
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)", (version, description, time.time()))
                applied.append((version, description))
        return applied

    # -- registry ----------------------------------------------------------
    def device_key(self, dev_eui):
        row = self._conn().execute("SELECT key FROM device_keys WHERE dev_eui=%s", (hex_eui(dev_eui),)).fetchone()
        return bytes(row["key"]) if row else None

    # -- ingest -------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self):
        conn = self._conn()
        self._end_claim(conn, commit=False)
        with conn.transaction():
            b = _PgBatch(self, conn)
            yield b
            b.flush()

    # -- outbox -------------------------------------------------------------
    def _register_sink(self, conn, sink):
        """A new sink starts with every stored report waiting, as on SQLite (cursor at 0)."""
        if conn.execute("SELECT 1 FROM outbox_sinks WHERE sink=%s", (sink,)).fetchone():
            return
        with conn.transaction():
            # SHARE blocks report writers until this commits: none can slip between the backfill
            # and the moment its own INSERT ... SELECT FROM outbox_sinks sees the new sink
            conn.execute("LOCK TABLE reports IN SHARE MODE")
            if conn.execute("INSERT INTO outbox_sinks VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING sink",
                            (sink, time.time())).fetchone():
                conn.execute("INSERT INTO outbox (sink, report_id, dev_eui) SELECT %s, id, dev_eui FROM reports",
                             (sink,))
                conn.execute("INSERT INTO outbox_claim (sink, dev_eui) SELECT DISTINCT %s, dev_eui FROM reports"
                             " ON CONFLICT DO NOTHING", (sink,))

    def _end_claim(self, conn, commit):
        claim = getattr(self._local, "claim", None)
        if claim is None:
            return
        self._local.claim = None
        conn.execute("COMMIT" if commit else "ROLLBACK")

    def outbox_fetch(self, sink, limit, hold_s=0.0, now=None):
        """Claim devices (SKIP LOCKED) whose oldest waiting report may go now and return
        what may go, per device in sequence order (order.py); the claim stays open on this
        thread's connection until they are all settled."""
        now = time.time() if now is None else now
        conn = self._conn()
        self._end_claim(conn, commit=False)
        self._register_sink(conn, sink)
        conn.execute("BEGIN")
        try:
            # with a hold, only devices whose oldest waiting report may go (order.eligible)
            held = (" JOIN reports r ON r.id = o.report_id LEFT JOIN outbox_mark m ON m.sink = o.sink AND"
                    " m.dev_eui = o.dev_eui WHERE (" + order.eligible("%(cut)s") + ") AND") if hold_s > 0 else " WHERE"
            claimed = [r["dev_eui"] for r in conn.execute(
                "SELECT c.dev_eui FROM outbox_claim c WHERE c.sink=%(s)s AND EXISTS"
                " (SELECT 1 FROM outbox o" + held + " o.sink=%(s)s AND o.dev_eui=c.dev_eui)"
                " ORDER BY (SELECT min(o.report_id) FROM outbox o WHERE o.sink=%(s)s AND o.dev_eui=c.dev_eui)"
                " LIMIT %(n)s FOR UPDATE SKIP LOCKED", {"s": sink, "n": limit, "cut": now - hold_s})]
            claims = {eui: (None, None) for eui in claimed}
            if claimed and hold_s > 0:
                claims.update((r["dev_eui"], (r["next_seq"], r["newest_at"])) for r in conn.execute(
                    "SELECT dev_eui, next_seq, newest_at FROM outbox_mark WHERE sink=%s AND dev_eui = ANY(%s)",
                    (sink, claimed)))
            rows = []
            if claims:
                columns = "r.*, d.name AS device_name, d.site AS site, d.meta AS device_meta"
                tables = (" FROM outbox o JOIN reports r ON r.id = o.report_id LEFT JOIN devices d"
                          " ON d.dev_eui = r.dev_eui WHERE o.sink=%s AND o.dev_eui = ANY(%s)")
                if hold_s > 0:      # each device's first `limit` by sequence number
                    rows = conn.execute(
                        "SELECT * FROM (SELECT " + columns + ", row_number() OVER (PARTITION BY r.dev_eui ORDER BY"
                        " r.seq) AS nth" + tables + ") x WHERE nth <= %s ORDER BY dev_eui, seq",
                        (sink, list(claims), limit)).fetchall()
                else:
                    rows = conn.execute("SELECT " + columns + tables + " ORDER BY o.report_id LIMIT %s",
                                        (sink, list(claims), limit)).fetchall()
                rows = order.release_all(claims, rows, now, hold_s, limit)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if not rows:
            conn.execute("ROLLBACK")
            return []
        self._local.claim = {"sink": sink, "ids": {r["id"] for r in rows}}
        for r in rows:
            r["device_meta"] = r["device_meta"] or {}
        return rows

    def _mark(self, conn, sink, items):
        for eui, (mark, newest) in order.marks_after(items).items():
            conn.execute("INSERT INTO outbox_mark VALUES (%s, %s, %s, %s) ON CONFLICT (sink, dev_eui) DO UPDATE"
                         " SET next_seq = greatest(outbox_mark.next_seq, excluded.next_seq),"
                         " newest_at = greatest(outbox_mark.newest_at, excluded.newest_at)", (sink, eui, mark, newest))

    def _settle(self, sink, ids, dead=None, items=()):
        conn = self._conn()
        claim = getattr(self._local, "claim", None)
        if claim is not None and claim["sink"] == sink:
            if dead is not None:
                conn.execute("INSERT INTO outbox_dead (sink, report_id, reason, at) VALUES (%s,%s,%s,%s)",
                             (sink, dead[0], dead[1], time.time()))
                return
            conn.execute("DELETE FROM outbox WHERE sink=%s AND report_id = ANY(%s)", (sink, ids))
            self._mark(conn, sink, items)
            conn.execute("INSERT INTO outbox_delivered VALUES (%s, %s, %s) ON CONFLICT (sink) DO UPDATE"
                         " SET n = outbox_delivered.n + excluded.n, updated_at = excluded.updated_at",
                         (sink, len(ids), time.time()))
            claim["ids"].difference_update(ids)
            if not claim["ids"]:
                self._end_claim(conn, commit=True)
            return
        with self._tx() as conn:
            if dead is not None:
                conn.execute("INSERT INTO outbox_dead (sink, report_id, reason, at) VALUES (%s,%s,%s,%s)",
                             (sink, dead[0], dead[1], time.time()))
            else:
                conn.execute("DELETE FROM outbox WHERE sink=%s AND report_id = ANY(%s)", (sink, ids))
                self._mark(conn, sink, items)

    def outbox_done(self, sink, items):
        if items:
            self._settle(sink, [item["id"] for item in items], items=items)

    def outbox_dead(self, sink, item, reason):
        self._settle(sink, None, dead=(item["id"], str(reason)[:500]))

    def outbox_stats(self, sinks, now):
        conn = self._conn()
        out = {}
        for sink in sinks:
            row = conn.execute(
                "SELECT count(*) AS depth, min(r.stored_at) AS oldest FROM outbox o JOIN reports r"
                " ON r.id = o.report_id WHERE o.sink=%s", (sink,)).fetchone()
            dead = conn.execute("SELECT count(*) AS n FROM outbox_dead WHERE sink=%s", (sink,)).fetchone()["n"]
            delivered = conn.execute("SELECT n FROM outbox_delivered WHERE sink=%s", (sink,)).fetchone()
            out[sink] = {"depth": row["depth"], "age_s": (now - row["oldest"]) if row["oldest"] else 0.0,
                         "dead": dead, "position": delivered["n"] if delivered else 0}
        return out
