"""Read models shared by the SQL backends: the same queries on SQLite and PostgreSQL.

A backend provides `_fetch(sql, args) -> [dict]` running SQL written with `?`
placeholders (PostgreSQL's driver turns them into its own), and stores JSON
either as text (SQLite) or as jsonb, which the driver already decodes: `_json`
accepts both.
"""
import json

from .base import TABLES, StoreError, hex_eui


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
