"""The ingest pipeline: parse -> identify -> decode/verify -> dedupe -> store, in batches.

Sources call `submit(...)` with an `ack` callback. One worker thread takes
whatever is queued (up to `batch_max`), processes it inside one store
transaction and commits; only then are the acks called (MQTT PUBACK, HTTP
200). A failed commit acknowledges nothing and is retried, so a crash or a
kill -9 at any point loses nothing the gateway has acknowledged: the broker
redelivers the rest and the duplicate check makes redelivery harmless.
"""
import collections
import gc
import hashlib
import json
import logging
import marshal
import multiprocessing
import pickle
import queue
import threading
import time

import vistelse_codec

from . import ingest, receipts, verify
from .uplink import Ignored, NetworkEvent, Rejected, Uplink

log = logging.getLogger("vistelse.pipeline")
U16 = 0xFFFF


class Item:
    __slots__ = ("kind", "where", "body", "content_type", "ack", "received", "result", "prepared")

    def __init__(self, kind, where, body, content_type, ack, received):
        self.kind, self.where, self.body, self.content_type = kind, where, body, content_type
        self.ack, self.received, self.result, self.prepared = ack, received, None, None


def prepare(kind, where, body, content_type=""):
    """The CPU-heavy, state-free part: parse the network server's message and
    decode the frame's structure (no key, so no tag check: that stays with
    the pipeline). Runs inline or in an ingest worker process.
    -> ("ok", msg, predecoded) | ("ignored", text) | ("rejected", reason, detail)"""
    import vistelse_codec
    try:
        msg = ingest.parse(kind, where, body, content_type)
    except Ignored as exc:
        return ("ignored", str(exc))
    except Rejected as exc:
        return ("rejected", exc.reason, exc.detail)
    except Exception as exc:  # pragma: no cover - a parser bug
        return ("rejected", "internal_error", repr(exc)[:300])
    predecoded = None
    if isinstance(msg, Uplink) and msg.f_port == vistelse_codec.FPORT_REPORT and msg.payload:
        try:
            predecoded = vistelse_codec.decode_uplink(msg.payload, msg.f_port)
        except vistelse_codec.PayloadError as exc:
            predecoded = exc.reason
        except Exception as exc:  # pragma: no cover - a codec bug
            predecoded = "codec error: %r" % exc
        else:
            digest(predecoded)
    msg.raw = b""
    return ("ok", msg, predecoded)


_ENCODER = json.JSONEncoder(separators=(",", ":"))   # one encoder: json.dumps would build one per call
_json = _ENCODER.encode
_LINE_JSON = '{"in":%d,"out":%d,"total_in":%d,"total_out":%d,"total_in_ext":%d,"total_out_ext":%d}'


def digest(report):
    """The state-free work on a decoded report, done once where it was decoded (in an ingest
    worker) rather than in the store thread; used only once that thread has checked the tag.
    Each interval gets its `content_hash` and its zones (and height classes) as JSON text,
    in place of the zones themselves, which the store thread needs only as text; the
    report keeps how many zones there were (`zone_count`)."""
    report["zone_count"] = len(report["intervals"][0]["zones"])
    for iv in report["intervals"]:
        iv["content_hash"] = content_hash(iv, report["interval_s"])
        iv["zones_json"] = _json(iv.pop("zones"))
        iv["height_classes_json"] = _json(iv["height_classes"]) if "height_classes" in iv else None
    return report


def report_data_json(interval, totals_ext):
    """A digested interval's `data` as stored, {"zones", "lines"[, "height_classes"]}, with the
    lines' extended totals [(in, out), ...] -> the same text as json.dumps of that dict
    (tests/test_gateway_pipeline.py checks), written without building the dict: the codec's
    lines hold exactly these integers."""
    lines = ",".join([_LINE_JSON % (line["in"], line["out"], line["total_in"], line["total_out"], ext_in, ext_out)
                      for line, (ext_in, ext_out) in zip(interval["lines"], totals_ext)])
    text = '{"zones":%s,"lines":[%s]' % (interval["zones_json"], lines)
    if interval["height_classes_json"] is not None:
        text += ',"height_classes":%s' % interval["height_classes_json"]
    return text + "}"


def prepare_many(batch):
    return [prepare(*args) for args in batch]


def pack_results(results):
    """prepare() results -> bytes for the pipe from a worker. marshal, not pickle: the results
    are plain values (strings, numbers, bytes, lists, dicts) but for the Uplink/NetworkEvent
    objects, sent as their attribute dicts, and marshal reads them back in about half
    pickle's time, in the gateway's busiest thread. Anything marshal cannot write goes
    as a pickle."""
    plain = []
    for result in results:
        if result[0] == "ok":
            msg = result[1]
            result = ("ok", type(msg) is NetworkEvent, vars(msg), result[2])
        plain.append(result)
    try:
        return b"M" + marshal.dumps(plain)
    except ValueError:
        return b"P" + pickle.dumps(results, pickle.HIGHEST_PROTOCOL)


def unpack_results(data):
    """pack_results' bytes -> the prepare() results."""
    if data[:1] == b"P":
        return pickle.loads(memoryview(data)[1:])
    results = marshal.loads(memoryview(data)[1:])
    for k, result in enumerate(results):
        if result[0] == "ok":
            msg = object.__new__(NetworkEvent if result[1] else Uplink)
            msg.__dict__ = result[2]
            results[k] = ("ok", msg, result[3])
    return results


# Collections every GC_ALLOCATIONS allocations instead of CPython's default 700.
GC_ALLOCATIONS = 50_000


def tune_gc():
    """Fit the cyclic garbage collector to a long-running ingest process, once it has started.

    Ingest allocates many short-lived objects (parsed events, decoded reports, rows, queued
    messages) and almost no reference cycles. At CPython's default threshold a collection
    runs every 700 allocations, i.e. every few uplinks, and the older generations' passes
    walk everything queued and every object created at start-up: 16 of the main process's
    ~125 us of CPU per uplink in `benchmarks/bench_ingest.py`. `gc.freeze()` moves what
    start-up created out of the collector's reach (CPython's documentation of gc.freeze
    recommends it for long-running processes) and collections run every GC_ALLOCATIONS
    allocations: cycles are still freed, a few milliseconds later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_ALLOCATIONS, 20, 100)


def _worker_main(conn):
    """An ingest worker process: pickled lists of prepare() arguments in, their results out.
    A thread takes the tasks off the pipe as they come, so the pipeline's send never waits
    on this process's send of an earlier result."""
    import signal
    tune_gc()
    # the pipeline ends its workers itself after a graceful stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tasks = queue.Queue()

    def receive():
        try:
            while True:
                tasks.put(conn.recv_bytes())
        except (EOFError, OSError):       # the gateway closed the pipe or died
            tasks.put(None)
    threading.Thread(target=receive, name="tasks", daemon=True).start()
    while True:
        task = tasks.get()
        if task is None:
            return
        conn.send_bytes(pack_results(prepare_many(pickle.loads(task))))


class _Worker:
    """One ingest worker process behind a pipe, driven by the pipeline thread itself: no
    feeder or result threads in the gateway's process, which would compete with the MQTT
    client and the store thread for the one interpreter lock."""

    def __init__(self, context):
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(target=_worker_main, args=(child,), name="vistelse-ingest", daemon=True)
        self.process.start()
        child.close()
        self.failed = False

    def send(self, tasks):
        self.conn.send_bytes(pickle.dumps(tasks, pickle.HIGHEST_PROTOCOL))

    def receive(self, timeout):
        if not self.conn.poll(timeout):
            raise TimeoutError("no result from the ingest worker in %d s" % timeout)
        return unpack_results(self.conn.recv_bytes())

    def stop(self):
        self.failed = True
        self.conn.close()
        self.process.terminate()
        self.process.join(5)


def content_hash(interval, interval_s):
    """64-bit fingerprint of what a report interval says (not when it was sent)."""
    core = (interval["span"], interval_s,
            [(z["visits"], z["person_s"], z["max_occupancy"], z["dwell_hist"] and tuple(z["dwell_hist"]["counts"]))
             for z in interval["zones"]],
            [(l["in"], l["out"], l["total_in"], l["total_out"]) for l in interval["lines"]],
            (interval["height_classes"] or {}).get("counts") if "height_classes" in interval else "-")
    digest = hashlib.blake2b(repr(core).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Pipeline:
    def __init__(self, store, metrics, *, batch_max=2000, replay_window=4096, queue_max=20000,
                 keep_raw_body=True, on_commit=None, workers=0, quarantine_body_max=64 * 1024,
                 receipt_policy=None, on_receipt=None):
        self.store = store
        self.receipt_policy = receipt_policy      # None: receipts off ([receipts] in the config)
        self.on_receipt = on_receipt or []        # callable(dev_eui hex, device row, frame bytes)
        self.quarantine_body_max = quarantine_body_max
        self.metrics = metrics
        self.batch_max = batch_max
        self.replay_window = replay_window
        self.keep_raw_body = keep_raw_body
        self.on_commit = on_commit or []
        # SimpleQueue (C) rather than Queue (a lock and two conditions in Python): handing a message
        # over costs the MQTT client's thread and the pipeline's a fraction as much; queue_max is
        # kept by submit() waiting while the queue is full
        self.queue = queue.SimpleQueue()
        self.queue_max = queue_max
        self._stop = threading.Event()
        self._thread = None
        self.last_progress = time.monotonic()
        self.healthy = True
        self.workers = workers
        self.pool = None

    def _start_pool(self):
        if self.workers:
            # spawn, not fork: the process has threads (paho, web) by now
            self._context = multiprocessing.get_context("spawn")
            self.pool = [_Worker(self._context) for _ in range(self.workers)]

    # -- feeding ------------------------------------------------------------
    def submit(self, kind, where, body, content_type="", ack=None, received=None):
        """Queue one message. `ack(result)` is called after it is committed. Waits while
        queue_max messages are queued (the source then stops reading: back-pressure)."""
        while self.queue.qsize() >= self.queue_max and not self._stop.is_set():
            time.sleep(0.005)
        self.queue.put(Item(kind, where, bytes(body), content_type, ack, received or time.time()))

    def submit_and_wait(self, kind, where, body, content_type="", timeout=30):
        done = threading.Event()
        box = {}

        def ack(result):
            box["result"] = result
            done.set()
        self.submit(kind, where, body, content_type, ack)
        if not done.wait(timeout):
            return None
        return box["result"]

    # -- running ------------------------------------------------------------
    def start(self):
        self._start_pool()
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self._thread.start()

    def stop(self, timeout=10):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        if self.pool is not None:
            for worker in self.pool:
                worker.stop()
            self.pool = None

    def _collect(self, block):
        """Up to batch_max queued items; waits up to 0.2 s for the first when `block`."""
        items = []
        try:
            items.append(self.queue.get(timeout=0.2) if block else self.queue.get_nowait())
        except queue.Empty:
            return items
        while len(items) < self.batch_max:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _submit(self, items):
        """Hand a batch to the worker processes, a share each -> [(worker, first, end)]
        (None: prepare inline)."""
        if self.pool is None or not items:
            return None
        n = len(self.pool)
        share = -(-len(items) // n)
        pending = []
        for k in range(0, len(items), share):
            worker = self.pool[k // share]
            try:
                worker.send([(i.kind, i.where, i.body, i.content_type) for i in items[k:k + share]])
            except (OSError, ValueError):
                log.exception("ingest worker unreachable; preparing its share in the pipeline")
                self._replace(worker)
                continue
            pending.append((worker, k, min(k + share, len(items))))
        return pending

    def _replace(self, worker):
        """A worker that failed is stopped and started afresh; what was sent to it is prepared inline."""
        if worker.failed:
            return
        worker.stop()
        if self.pool is not None and worker in self.pool:
            self.pool[self.pool.index(worker)] = _Worker(self._context)

    def _await(self, items, pending):
        if pending is None:
            return
        for worker, first, end in pending:
            if worker.failed:
                continue
            try:
                results = worker.receive(60)
            except Exception:
                log.exception("ingest worker failed; preparing its share in the pipeline")
                self._replace(worker)
                continue
            for item, prepared in zip(items[first:end], results):
                item.prepared = prepared

    def alive(self):
        return self._thread is not None and self._thread.is_alive()

    def _run(self):
        """Batch k is committed while batch k+1 is prepared by the worker pool."""
        current, current_async = [], None
        while True:
            if not current:
                current = self._collect(block=True)
                if not current:
                    self.last_progress = time.monotonic()
                    if self._stop.is_set():
                        return
                    continue
                current_async = self._submit(current)
            following = self._collect(block=False) if self.pool is not None else []
            following_async = self._submit(following)
            self._await(current, current_async)
            self._commit(current)
            current, current_async = following, following_async

    def _commit(self, items):
        delay = 0.05
        while True:
            try:
                self.process(items)
                break
            except Exception:  # store trouble: keep the batch, acknowledge nothing, retry
                self.metrics.inc("vistelse_gateway_store_errors_total")
                self.healthy = False
                log.exception("commit failed; retrying %d messages in %.1f s", len(items), delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.healthy = True
        self.last_progress = time.monotonic()
        for item in items:
            if item.ack is not None:
                try:
                    item.ack(item.result)
                except Exception:
                    log.exception("acknowledging failed")
        for callback in self.on_commit:
            callback()

    # -- processing ---------------------------------------------------------
    def process(self, items):
        """Process and commit a list of Items (also used directly by tests)."""
        counts = []
        euis = []
        for item in items:
            # parsing needs no state: outside the transaction, so the device locks are held briefly
            if item.prepared is None:
                item.prepared = prepare(item.kind, item.where, item.body, item.content_type)
            if item.prepared[0] == "ok" and getattr(item.prepared[1], "dev_eui", None):
                euis.append(item.prepared[1].dev_eui)
        with self.store.batch() as batch:
            batch.lock_devices(euis)
            for item in items:
                item.result = self._one(batch, item)
                counts.append(item.result)
        # committed: now the receipts may leave (a receipt must never tell of an
        # interval the store could still lose)
        for item in items:
            receipt = item.result.get("receipt")
            if receipt is not None:
                for callback in self.on_receipt:
                    try:
                        callback(*receipt)
                    except Exception:
                        log.exception("sending a receipt failed")
        # counted per batch, then added to the counters once per label set
        tally = collections.Counter()
        for result in counts:
            tally["vistelse_gateway_uplinks_total" if result["type"] == "uplink" else "vistelse_gateway_messages_total",
                  ("outcome", result["outcome"])] += 1
            if result["outcome"] == "rejected":
                tally["vistelse_gateway_rejections_total", ("reason", result["reason"])] += 1
            if result.get("stored"):
                tally["vistelse_gateway_intervals_stored_total", None] += result["stored"]
            if result.get("recovered"):
                tally["vistelse_gateway_intervals_recovered_total", None] += result["recovered"]
            if result.get("receipt"):
                tally["vistelse_gateway_receipts_sent_total", None] += 1
            if result.get("event"):
                tally["vistelse_gateway_events_total", ("kind", result["event"])] += 1
            for w in result.get("warnings", ()):
                tally["vistelse_gateway_warnings_total", ("kind", w)] += 1
        for (name, label), value in tally.items():
            self.metrics.inc(name, value, **dict([label] if label else []))
        self.metrics.last_batch_at = time.time()
        return counts

    def _quarantine(self, batch, item, exc, msg=None, kind="uplink"):
        dev = None
        if msg is not None and getattr(msg, "dev_eui", None):
            dev = msg.dev_eui.hex()
        # junk is kept once (in quarantine, not again in the raw uplinks) and truncated: anyone who can
        # publish to the network server's broker must not be able to fill the disk
        body, detail, limit = item.body, exc.detail, self.quarantine_body_max
        if len(body) > limit:
            detail = "%s (message of %d bytes; the first %d kept)" % (detail, len(body), limit)
            body = body[:limit]
        payload = getattr(msg, "payload", None)
        uplink_id = batch.add_raw({
            "received_at": item.received, "source": getattr(msg, "source", item.kind),
            "topic": item.where if "mqtt" in item.kind else "", "dev_eui": dev,
            "f_cnt": getattr(msg, "f_cnt", None), "f_port": getattr(msg, "f_port", None),
            "dedup_id": getattr(msg, "dedup_id", None),
            "payload": payload if payload is not None and len(payload) <= 1024 else None,
            "body": None, "outcome": "rejected", "reason": exc.reason})
        batch.add_quarantine({"at": item.received, "source": getattr(msg, "source", item.kind),
                              "topic": item.where, "dev_eui": dev, "reason": exc.reason, "detail": detail,
                              "uplink_id": uplink_id, "body": body})
        return {"type": kind, "outcome": "rejected", "reason": exc.reason, "detail": exc.detail}

    def _one(self, batch, item):
        msg = None
        try:
            prepared = item.prepared or prepare(item.kind, item.where, item.body, item.content_type)
            if prepared[0] == "ignored":
                return {"type": "message", "outcome": "ignored", "reason": prepared[1]}
            if prepared[0] == "rejected":
                raise Rejected(prepared[1], prepared[2])
            msg, predecoded = prepared[1], prepared[2]
            msg.raw = item.body
            device = verify.identify(batch, msg)
            if isinstance(msg, NetworkEvent):
                return self._event(batch, item, msg, device)
            report = verify.decode(batch, device, msg, predecoded)
            return self._uplink(batch, item, msg, device, report)
        except Rejected as exc:
            if isinstance(msg, NetworkEvent):
                if exc.reason in ("unknown_device",):
                    return {"type": "message", "outcome": "ignored", "reason": exc.reason}
                return self._quarantine(batch, item, exc, msg, kind="message")
            return self._quarantine(batch, item, exc, msg)
        except Exception as exc:  # a bug must not block the stream: quarantine with the error
            log.exception("internal error on a %s message", item.kind)
            return self._quarantine(batch, item, Rejected("internal_error", repr(exc)[:300]), msg)

    def _event(self, batch, item, ev, device):
        eui = device["dev_eui"]
        at = ev.time or item.received
        if ev.kind == "log" and ev.body.get("level") == "INFO":
            return {"type": "message", "outcome": "ignored", "reason": "info log"}
        batch.add_event({"at": at, "dev_eui": eui, "kind": ev.kind, "source": ev.source, "body": ev.body})
        state = batch.device_state(eui) or {}
        if ev.kind == "join":
            state["joined_at"] = at
            state["joined_since_uplink"] = True
        elif ev.kind == "status":
            state["ns_battery_level"] = ev.body.get("battery_level")
            state["ns_margin"] = ev.body.get("margin")
        elif ev.kind == "log":
            state["last_ns_log"] = {"at": at, "level": ev.body.get("level"), "code": ev.body.get("code")}
        batch.put_device_state(eui, state)
        return {"type": "message", "outcome": "accepted", "event": ev.kind}

    def _uplink(self, batch, item, msg, device, report):
        eui = device["dev_eui"]
        state = batch.device_state(eui) or {}
        hi = state.get("hi_seq")
        ext0 = report["seq"] if hi is None else verify.extend(hi, report["seq"])
        if hi is not None and hi - ext0 > self.replay_window:
            raise Rejected("seq_outside_window", "seq %d is %d intervals behind %d" % (report["seq"], hi - ext0, hi))
        interval_s = report["interval_s"]
        ext = []
        offset = 0
        for iv in report["intervals"]:
            ext.append(ext0 + offset)
            offset += iv["span"]
        # nothing at or after the newest stored interval can be stored yet
        stored = batch.stored_intervals(eui, ext) if hi is not None and ext[0] <= hi else {}
        if "zone_count" not in report:       # decoded here, not by prepare()
            digest(report)
        new = []
        for i, (seq, iv) in enumerate(zip(ext, report["intervals"])):
            if seq in stored:
                if stored[seq][0] != iv["content_hash"]:
                    raise Rejected("replay", "seq %d (%d) is already stored with other content" % (iv["seq"], seq))
            else:
                new.append((i, seq, iv))
        warnings = []
        last_fcnt = state.get("last_fcnt")
        regressed = last_fcnt is not None and msg.f_cnt < last_fcnt and not state.get("joined_since_uplink")
        if not new:
            same_frame = any(stored[s][1] == msg.f_cnt for s in ext)
            if regressed and not same_frame:
                raise Rejected("fcnt_replay", "fCnt %d after %d without a join; report already stored"
                               % (msg.f_cnt, last_fcnt))
            batch.add_raw(self._raw(item, msg, eui, "duplicate"))
            return {"type": "uplink", "outcome": "duplicate", "dev_eui": eui}
        if regressed:
            warnings.append("fcnt_regressed_without_join")
        received = msg.time or item.received
        uplink_id = batch.add_raw(self._raw(item, msg, eui, "accepted"))

        # extended line totals, relative to the device's last known totals
        ref_totals = state.get("totals")
        n_lines = len(report["intervals"][0]["lines"])
        if not ref_totals or len(ref_totals) != 2 * n_lines:
            last_lines = report["intervals"][-1]["lines"]
            ref_totals = [v for l in last_lines for v in (l["total_in"], l["total_out"])]

        ends = self._end_times(batch, eui, report, ext, received)
        for (i, seq, iv) in new:
            end_at, estimated = ends[i]
            totals_ext = [(verify.extend(ref_totals[2 * k], line["total_in"]),
                           verify.extend(ref_totals[2 * k + 1], line["total_out"])) for k, line in enumerate(iv["lines"])]
            batch.add_report({
                "dev_eui": eui, "seq": seq, "seq16": iv["seq"], "span": iv["span"], "interval_s": interval_s,
                "start_at": end_at - iv["duration_s"], "end_at": end_at, "time_estimated": estimated,
                "received_at": received, "uplink_id": uplink_id, "f_cnt": msg.f_cnt, "content_hash": iv["content_hash"],
                "config_version": report["status"]["config_version"],
                "data_json": report_data_json(iv, totals_ext)})
        book = state.setdefault("receipts", {})
        recovered = 0
        for (i, seq, iv) in new:
            recovered += receipts.note_stored(book, seq, iv["span"])
        receipt = None
        if self.receipt_policy is not None:
            wanted = receipts.decide(book, received, self.receipt_policy)
            if wanted is not None:
                frame = vistelse_codec.encode_downlink(wanted, dev_eui=bytes.fromhex(eui), key=batch.device_key(eui))
                receipt = (eui, device, frame)

        newest = ext[-1]
        if hi is None or newest >= hi:
            last = report["intervals"][-1]["lines"]
            state["totals"] = [verify.extend(ref_totals[2 * k + j], last[k]["total_in" if j == 0 else "total_out"])
                               for k in range(n_lines) for j in (0, 1)]
            state["hi_seq"] = newest
        st = report["status"]
        state.update({
            "last_fcnt": msg.f_cnt,
            "joined_since_uplink": False, "last_seen": received, "received": item.received,
            "battery_mv": st["battery_mv"],
            "health": st["health"], "config_version": st["config_version"], "reset_cause": st["reset_cause"],
            "interval_s": interval_s, "rssi": msg.rssi, "snr": msg.snr, "dr": msg.dr, "source": msg.source,
            "uplinks": state.get("uplinks", 0) + 1, "zones": report["zone_count"],
            "lines": n_lines, "age_unknown": report["age_s"] is None,
            "height_classes": "height_classes" in report["intervals"][0],
        })
        if regressed:
            state["fcnt_warning_at"] = received
        if st["reset_cause"]:
            state["last_reset"] = {"at": received, "cause": st["reset_cause"]}
        batch.put_device_state(eui, state)
        changes = batch.settle_downlinks(eui, st["config_version"], "config_rejected" in st["health"], received)
        return {"type": "uplink", "outcome": "accepted", "dev_eui": eui, "stored": len(new),
                "duplicates": len(ext) - len(new), "warnings": warnings, "downlinks": changes,
                "recovered": recovered, "receipt": receipt}

    def _raw(self, item, msg, eui, outcome):
        return {"received_at": item.received, "source": msg.source, "topic": msg.topic, "dev_eui": eui,
                "f_cnt": msg.f_cnt, "f_port": msg.f_port, "dedup_id": msg.dedup_id, "payload": msg.payload,
                "body": item.body if self.keep_raw_body else None, "outcome": outcome}

    def _end_times(self, batch, eui, report, ext, received):
        """Wall-clock end of each interval: receive time - end_age_s; estimated from
        stored neighbours when the node lost its clock (age unknown)."""
        ivs = report["intervals"]
        if report["age_s"] is not None:
            return [(received - iv["end_age_s"], False) for iv in ivs]
        # end of the report's last interval, from the nearest stored interval with a known time
        step = report["interval_s"]
        last_end_seq = ext[-1] + ivs[-1]["span"]   # "seq after" the last interval
        anchor = batch.neighbour(eui, ext[0], before=True)
        last_end = None
        if anchor:
            seq, span, _, end_at = anchor
            last_end = end_at + (last_end_seq - (seq + span)) * step
        else:
            anchor = batch.neighbour(eui, ext[-1], before=False)
            if anchor:
                seq, span, _, end_at = anchor
                last_end = end_at - ((seq + span) - last_end_seq) * step
        if last_end is None or last_end > received:
            last_end = received          # no better knowledge: assume it was sent at once
        ends = []
        t = last_end
        for iv in reversed(ivs):
            ends.append((t, True))
            t -= iv["duration_s"]
        return list(reversed(ends))
