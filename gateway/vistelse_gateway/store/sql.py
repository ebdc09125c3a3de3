"""Read models and operator writes shared by the SQL backends: the same SQL on SQLite
and PostgreSQL (the ingest batch and the outbox differ and stay in each backend).

A backend provides `_fetch(sql, args) -> [dict]` running SQL written with `?`
placeholders (PostgreSQL's driver turns them into its own), and stores JSON
either as text (SQLite) or as jsonb, which the driver already decodes: `_json`
accepts both.
"""
import json
import time

from .base import GENESIS, TABLES, StoreError, chain_hash, check_device, hex_eui, verify_chain


def _json(value, empty=None):
    if value is None:
        return {} if empty is None else empty
    if isinstance(value, (str, bytes)):
        return json.loads(value or "{}")
    return value


def device_row(row):
    if row is None:
        return None
    d = dict(row)
    d["meta"] = _json(d["meta"])
    d["register"] = _json(d["register"])
    return d


class SqlReadModels:
    def _fetch(self, sql, args=()):
        raise NotImplementedError

    def get_device(self, dev_eui):
        rows = self._fetch("SELECT * FROM devices WHERE dev_eui=?", (hex_eui(dev_eui),))
        return device_row(rows[0]) if rows else None

    def list_devices(self):
        return [device_row(r) for r in self._fetch("SELECT * FROM devices ORDER BY site, name, dev_eui")]

    def overview(self):
        devices = self.list_devices()
        states = {r["dev_eui"]: _json(r["state"]) for r in self._fetch("SELECT dev_eui, state FROM device_state")}
        qcounts = {r["dev_eui"]: r["n"] for r in self._fetch(
            "SELECT dev_eui, count(*) AS n FROM quarantine GROUP BY dev_eui")}
        pend = {}
        for r in self._fetch("SELECT dev_eui, config_version, status FROM downlinks ORDER BY id"):
            pend[r["dev_eui"]] = {"config_version": r["config_version"], "status": r["status"]}
        for d in devices:
            d["state"] = states.get(d["dev_eui"], {})
            d["rejected"] = qcounts.get(d["dev_eui"], 0)
            d["downlink"] = pend.get(d["dev_eui"])
        return devices

    def quarantine(self, limit=100):
        return self._fetch("SELECT id, at, source, topic, dev_eui, reason, detail FROM quarantine"
                           " ORDER BY id DESC LIMIT ?", (limit,))

    def quarantine_counts(self):
        return {r["reason"]: r["n"] for r in self._fetch("SELECT reason, count(*) AS n FROM quarantine GROUP BY reason")}

    def reports(self, since=None, until=None, dev_eui=None, limit=None):
        sql = ("SELECT r.*, d.site AS site, d.name AS device_name, d.meta AS device_meta FROM reports r"
               " LEFT JOIN devices d ON d.dev_eui = r.dev_eui WHERE 1=1")
        args = []
        if since is not None:
            sql += " AND r.end_at >= ?"
            args.append(since)
        if until is not None:
            sql += " AND r.end_at < ?"
            args.append(until)
        if dev_eui is not None:
            sql += " AND r.dev_eui = ?"
            args.append(hex_eui(dev_eui))
        sql += " ORDER BY r.end_at, r.dev_eui"
        if limit:
            sql += " LIMIT %d" % int(limit)
        out = self._fetch(sql, args)
        for item in out:
            item["data"] = _json(item["data"])
            item["device_meta"] = _json(item["device_meta"])
        return out

    def count(self, table):
        if table not in TABLES:
            raise StoreError("no table %s" % table)
        return self._fetch("SELECT count(*) AS n FROM %s" % table)[0]["n"]

    def events(self, dev_eui=None, limit=100):
        sql, args = "SELECT * FROM events", []
        if dev_eui:
            sql += " WHERE dev_eui=?"
            args.append(hex_eui(dev_eui))
        rows = self._fetch(sql + " ORDER BY id DESC LIMIT ?", args + [limit])
        for r in rows:
            r["body"] = _json(r["body"])
        return rows

    def oldest_raw(self):
        return self._fetch("SELECT min(received_at) AS t FROM uplinks")[0]["t"]

    def downlinks(self, dev_eui=None):
        sql, args = "SELECT * FROM downlinks", []
        if dev_eui:
            sql += " WHERE dev_eui=?"
            args.append(hex_eui(dev_eui))
        rows = self._fetch(sql + " ORDER BY id", args)
        for r in rows:
            r["config"] = _json(r["config"])
        return rows

    def last_config_version(self, dev_eui):
        eui = hex_eui(dev_eui)
        sent = self._fetch("SELECT max(config_version) AS v FROM downlinks WHERE dev_eui=?", (eui,))[0]["v"]
        rows = self._fetch("SELECT state FROM device_state WHERE dev_eui=?", (eui,))
        state = _json(rows[0]["state"]) if rows else {}
        return max(sent or 0, state.get("config_version") or 0)

    def access_log(self, limit=200):
        return self._fetch("SELECT * FROM access_log ORDER BY id DESC LIMIT ?", (limit,))


class SqlWrites:
    """Registry, retention, downlinks, sink state and access-log writes shared by the SQL
    backends. A backend provides `_sql_tx()` (a transaction whose `execute` takes SQL with
    `?` placeholders and returns rows addressable by column name), `integrity_errors`,
    and may serialise log appends (`_lock_log`) and lock a device row (`_lock_device`)."""
    integrity_errors = ()

    def _sql_tx(self):
        raise NotImplementedError

    def _lock_log(self, db):
        pass

    def _lock_device(self, db, eui):
        pass

    def _bump_registry(self, db):
        # the ingest caches of the registry compare this generation once per batch
        db.execute("INSERT INTO meta (key, value) VALUES ('registry_generation', '1') ON CONFLICT (key) DO UPDATE"
                   " SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)")

    def put_device(self, device, key=None, actor="system"):
        now = time.time()
        eui = check_device(device, key)
        with self._sql_tx() as db:
            exists = db.execute("SELECT 1 AS x FROM devices WHERE dev_eui=?", (eui,)).fetchone()
            if not exists and key is None:
                raise StoreError("a new device needs its 32-byte tag key")
            try:
                db.execute(
                    "INSERT INTO devices (dev_eui, name, site, network, application, tts_device_id, status, meta,"
                    " register, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (dev_eui) DO UPDATE"
                    " SET name=excluded.name, site=excluded.site, network=excluded.network,"
                    " application=excluded.application, tts_device_id=excluded.tts_device_id, status=excluded.status,"
                    " meta=excluded.meta, register=excluded.register, updated_at=excluded.updated_at",
                    (eui, device.get("name", ""), device.get("site", ""), device["network"], device["application"],
                     device.get("tts_device_id"), device.get("status", "active"),
                     json.dumps(device.get("meta") or {}), json.dumps(device.get("register") or {}), now, now))
            except self.integrity_errors:
                raise StoreError("another device already has application %r and device id %r"
                                 % (device["application"], device.get("tts_device_id"))) from None
            if key is not None:
                db.execute("INSERT INTO device_keys (dev_eui, key) VALUES (?, ?) ON CONFLICT (dev_eui) DO UPDATE"
                           " SET key = excluded.key", (eui, bytes(key)))
            self._bump_registry(db)
            self._append_log(db, actor, "device.put" if exists else "device.add",
                             {"dev_eui": eui, "key_changed": key is not None,
                              "status": device.get("status", "active")})

    def set_device_status(self, dev_eui, status, actor):
        if status not in ("active", "retired"):
            raise StoreError("status must be active or retired")
        eui = hex_eui(dev_eui)
        with self._sql_tx() as db:
            n = db.execute("UPDATE devices SET status=?, updated_at=? WHERE dev_eui=?", (status, time.time(), eui)).rowcount
            if not n:
                raise StoreError("no device %s" % eui)
            self._bump_registry(db)
            self._append_log(db, actor, "device.status", {"dev_eui": eui, "status": status})

    def sink_state(self, sink, key, value=None):
        if value is None:
            rows = self._fetch("SELECT value FROM sink_state WHERE sink=? AND key=?", (sink, key))
            return json.loads(rows[0]["value"]) if rows else None
        with self._sql_tx() as db:
            db.execute("INSERT INTO sink_state (sink, key, value) VALUES (?,?,?) ON CONFLICT (sink, key) DO UPDATE"
                       " SET value = excluded.value", (sink, key, json.dumps(value)))
        return value

    def purge(self, raw_before):
        with self._sql_tx() as db:
            n_raw = db.execute("DELETE FROM uplinks WHERE received_at < ?", (raw_before,)).rowcount
            n_q = db.execute("UPDATE quarantine SET body=NULL WHERE at < ? AND body IS NOT NULL",
                             (raw_before,)).rowcount
            n_ev = db.execute("DELETE FROM events WHERE at < ? AND kind='log'", (raw_before,)).rowcount
        return {"uplinks": n_raw, "quarantine_bodies": n_q, "log_events": n_ev}

    def purge_quarantine(self, before, max_bytes):
        size = "coalesce(length(body), 0) + length(coalesce(detail, ''))"
        with self._sql_tx() as db:
            n_old = db.execute("DELETE FROM quarantine WHERE at < ?", (before,)).rowcount
            total = db.execute("SELECT coalesce(sum(%s), 0) AS n FROM quarantine" % size).fetchone()["n"]
            n_big = 0
            if total > max_bytes:
                # the oldest rows go first, until what is left fits
                n_big = db.execute(
                    "DELETE FROM quarantine WHERE id IN (SELECT id FROM (SELECT id, sum(%s) OVER (ORDER BY id)"
                    " - (%s) AS before_it FROM quarantine) q WHERE before_it < ?)" % (size, size),
                    (total - max_bytes,)).rowcount
        return {"old": n_old, "over_size": n_big}

    def add_downlink(self, row):
        eui = hex_eui(row["dev_eui"])
        status = row.get("status", "pending")
        with self._sql_tx() as db:
            # ordered against a batch settling the same device's downlinks
            self._lock_device(db, eui)
            did = db.execute("INSERT INTO downlinks (dev_eui, config_version, config, via, status, created_at, detail)"
                             " VALUES (?,?,?,?,?,?,?) RETURNING id",
                             (eui, row["config_version"], json.dumps(row["config"]), row["via"], status, time.time(),
                              row.get("detail", ""))).fetchone()["id"]
            if status == "pending":
                # an older pending configuration is replaced by this one
                db.execute("UPDATE downlinks SET status='superseded', resolved_at=? WHERE dev_eui=? AND"
                           " status='pending' AND id<>?", (time.time(), eui, did))
            self._append_log(db, row.get("actor", "cli"), "downlink.enqueue",
                             {"dev_eui": eui, "config_version": row["config_version"], "via": row["via"],
                              "status": status})
            return did

    def _append_log(self, db, actor, action, detail):
        self._lock_log(db)      # one head, consecutive ids, whoever appends
        last = db.execute("SELECT id, hash FROM access_log ORDER BY id DESC LIMIT 1").fetchone()
        prev = last["hash"] if last else GENESIS
        entry_id = (last["id"] if last else 0) + 1
        at = time.time()
        detail_text = json.dumps(detail, sort_keys=True, separators=(",", ":"))
        digest = chain_hash(prev, entry_id, at, actor, action, detail_text)
        db.execute("INSERT INTO access_log (id, at, actor, action, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
                   (entry_id, at, actor, action, detail_text, prev, digest))
        return digest

    def log_access(self, actor, action, detail):
        with self._sql_tx() as db:
            return self._append_log(db, actor, action, detail)

    def verify_access_log(self):
        """-> {'ok': bool, 'entries': n, 'head': hash, 'first_bad': id or None, 'problem': text}"""
        return verify_chain(self._fetch("SELECT * FROM access_log ORDER BY id"))
