"""One worker thread per sink drains that sink's durable outbox.

Order: per device in sequence order; a device's report waits while a lower
one is missing, at most `hold_s` seconds (store/order.py: a receipt brings
the missing one back hours later). A batch is retried as a whole with
exponential backoff until the sink takes it. A
permanent refusal is narrowed down to the offending report, which is set
aside (outbox_dead, counted in metrics) so it cannot block the rest.
"""
import logging
import random
import threading

from .base import PermanentError

log = logging.getLogger("vistelse.outbox")


class OutboxWorker:
    def __init__(self, store, sink, metrics, backoff_min=0.5, backoff_max=60.0, idle_poll=1.0, hold_s=0.0):
        self.store, self.sink, self.metrics = store, sink, metrics
        self.hold_s = hold_s
        self.backoff_min, self.backoff_max, self.idle_poll = backoff_min, backoff_max, idle_poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self.failures = 0
        self.last_error = ""

    def notify(self):
        self._wake.set()

    def start(self):
        self._thread = threading.Thread(target=self._run, name="outbox-" + self.sink.name, daemon=True)
        self._thread.start()

    def stop(self, timeout=10):
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        self.sink.close()

    def alive(self):
        return self._thread is not None and self._thread.is_alive()

    def _sleep(self, seconds):
        self._wake.clear()
        self._wake.wait(seconds)

    def _backoff(self):
        delay = min(self.backoff_max, self.backoff_min * (2 ** min(self.failures - 1, 20)))
        return delay * (0.75 + 0.5 * random.random())

    def _run(self):
        while not self._stop.is_set():
            try:
                progressed = self.step()
            except Exception as exc:  # transient sink trouble, or the store is busy
                self.failures += 1
                self.last_error = str(exc)[:300]
                reason = type(exc).__name__
                self.metrics.inc("vistelse_gateway_sink_failures_total", sink=self.sink.name, reason=reason)
                delay = self._backoff()
                log.warning("sink %s: %s; retrying in %.1f s", self.sink.name, self.last_error, delay)
                self._stop.wait(delay)
                continue
            if not progressed:
                self._sleep(self.idle_poll)

    def step(self):
        """Deliver one batch. -> True if anything was settled. Raises on transient errors."""
        items = self.store.outbox_fetch(self.sink.name, self.sink.max_batch, self.hold_s)
        if not items:
            return False
        try:
            refused = self.sink.deliver(items) or {}
        except PermanentError:
            self._one_by_one(items)
        else:
            # a sink may refuse some reports for good and take the rest (NGSI-LD 207)
            for item in items:
                if item["id"] in refused:
                    self._dead(item, refused[item["id"]])
            self.store.outbox_done(self.sink.name, items)
            self._count_order(items)
            delivered = len(items) - len([i for i in items if i["id"] in refused])
            if delivered:
                self.metrics.inc("vistelse_gateway_sink_deliveries_total", delivered, sink=self.sink.name)
        self.failures = 0
        self.last_error = ""
        return True

    def _count_order(self, items):
        for key, name in (("waited", "vistelse_gateway_sink_held_back_total"),
                          ("given_up", "vistelse_gateway_sink_given_up_total"),
                          ("late", "vistelse_gateway_sink_late_total")):
            n = sum(int(i.get(key) or 0) for i in items)
            if n:
                self.metrics.inc(name, n, sink=self.sink.name)

    def _dead(self, item, reason):
        log.error("sink %s refuses report %s: %s", self.sink.name, item["id"], reason)
        self.store.outbox_dead(self.sink.name, item, reason)
        self.metrics.inc("vistelse_gateway_sink_failures_total", sink=self.sink.name, reason="permanent")

    def _one_by_one(self, items):
        for item in items:
            try:
                refused = self.sink.deliver([item]) or {}
            except PermanentError as exc:
                refused = {item["id"]: exc}
            if item["id"] in refused:
                self._dead(item, refused[item["id"]])
            else:
                self.metrics.inc("vistelse_gateway_sink_deliveries_total", sink=self.sink.name)
            self.store.outbox_done(self.sink.name, [item])
            self._count_order([item])
