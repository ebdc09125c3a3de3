"""Prometheus metrics through the official client library (prometheus_client).

Counters are created on first use (`inc(name, value, **labels)`), each in
this gateway's own registry, so two gateways in one process (tests) do not
share counts. Gauges that describe the store (outbox depth, last seen,
battery, quarantine) are read from the store at scrape time by a collector.
"""
import threading
import time

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .receipts import missing_count

# the *_created series double the output and no dashboard of ours uses them
prometheus_client.disable_created_metrics()

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# every counter the gateway keeps: help text and label names. All are declared at start, so a
# scrape lists each (with no samples until it first counts) and dashboards and alerts can rely on them
COUNTERS = {
    "vistelse_gateway_uplinks_total": ("Uplinks processed, by outcome (accepted, duplicate, rejected, ignored).",
                                       ("outcome",)),
    "vistelse_gateway_messages_total": ("Other network-server messages (join, status, log, ack...), by outcome.",
                                        ("outcome",)),
    "vistelse_gateway_rejections_total": ("Rejected (quarantined) messages, by reason.", ("reason",)),
    "vistelse_gateway_events_total": ("Network events kept, by kind (join, status, log).", ("kind",)),
    "vistelse_gateway_intervals_stored_total": ("Report intervals committed.", ()),
    "vistelse_gateway_intervals_recovered_total": ("Intervals stored after later ones of their device (sent again "
                                                   "after a receipt showed them missing).", ()),
    "vistelse_gateway_receipts_sent_total": ("Receipt downlinks (fPort 3) handed to the network server.", ()),
    "vistelse_gateway_warnings_total": ("Accepted uplinks with a warning, by kind.", ("kind",)),
    "vistelse_gateway_store_errors_total": ("Failed store commits (the batch is retried, nothing is acknowledged).",
                                            ()),
    "vistelse_gateway_sink_deliveries_total": ("Reports delivered, by sink.", ("sink",)),
    "vistelse_gateway_sink_held_back_total": ("Reports that waited for a missing lower interval of their device "
                                              "before going to the sink, by sink.", ("sink",)),
    "vistelse_gateway_sink_given_up_total": ("Missing intervals a sink stopped waiting for ([receipts] hold_back_h "
                                             "passed): later ones went on without them, by sink.", ("sink",)),
    "vistelse_gateway_sink_late_total": ("Reports that arrived after their gap was given up and went to the sink "
                                         "after later ones, by sink.", ("sink",)),
    "vistelse_gateway_sink_failures_total": ("Failed delivery attempts, by sink and reason.", ("reason", "sink")),
    "vistelse_gateway_mqtt_connections_total": ("MQTT (re)connections, by source.", ("source",)),
    "vistelse_gateway_http_ingest_total": ("HTTP ingest requests, by outcome (committed, spooled, refused).",
                                           ("outcome",)),
}


class Metrics:
    def __init__(self, instance=None):
        self.instance = instance    # gateway.instance: names the instance behind this endpoint
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        self._counters = {}         # name -> (Counter, label names)
        self.started = time.time()
        self.last_batch_at = None
        self.store_collector = None
        for name, (text, labels) in COUNTERS.items():
            self._declare(name, text, labels)

    def _declare(self, name, text, names):
        base = name[:-6] if name.endswith("_total") else name
        entry = (Counter(base, text, names, registry=self.registry), tuple(names))
        self._counters[name] = entry
        return entry

    def _counter(self, name, labels):
        with self._lock:
            entry = self._counters.get(name)
            if entry is None:         # a counter not in COUNTERS: declared on first use
                entry = self._declare(name, name, tuple(sorted(labels)))
        return entry

    def inc(self, name, value=1, **labels):
        counter, names = self._counter(name, labels)
        if set(labels) != set(names):
            raise ValueError("metric %s takes labels %s, not %s" % (name, names, sorted(labels)))
        (counter.labels(**labels) if names else counter).inc(value)

    def get(self, name, **labels):
        value = self.registry.get_sample_value(name, labels)
        return 0 if value is None else int(value) if value == int(value) else value

    def total(self, name):
        total = 0
        for family in self.registry.collect():
            for s in family.samples:
                if s.name == name:
                    total += s.value
        return total

    def attach_store(self, store, sinks):
        """Scrape-time gauges from the store (one collector per gateway)."""
        if self.store_collector is None:
            self.store_collector = _StoreCollector(self, store, sinks)
            self.registry.register(self.store_collector)


class _StoreCollector:
    def __init__(self, metrics, store, sinks):
        self.metrics, self.store, self.sinks = metrics, store, sinks

    def describe(self):
        return []      # gauges are dynamic: nothing to check at registration

    def collect(self):
        now = time.time()
        names = [s.name for s in self.sinks]
        stats = self.store.outbox_stats(names, now) if names else {}
        for name, text, field in (
                ("vistelse_gateway_outbox_depth", "Reports waiting for delivery, by sink.", "depth"),
                ("vistelse_gateway_outbox_oldest_age_seconds", "Age of the oldest undelivered report, by sink.",
                 "age_s"),
                ("vistelse_gateway_outbox_dead", "Reports a sink refused permanently, by sink.", "dead")):
            g = GaugeMetricFamily(name, text, labels=["sink"])
            for sink, st in sorted(stats.items()):
                g.add_metric([sink], round(st[field], 3))
            yield g
        seen = GaugeMetricFamily("vistelse_gateway_device_last_seen_timestamp_seconds",
                                 "Last accepted uplink per device.", labels=["dev_eui", "site"])
        battery = GaugeMetricFamily("vistelse_gateway_device_battery_millivolts",
                                    "Last reported battery voltage per device.", labels=["dev_eui", "site"])
        missing = GaugeMetricFamily("vistelse_gateway_device_intervals_missing",
                                    "Intervals missing below the newest stored one, per device (the node "
                                    "sends them again after a receipt).", labels=["dev_eui", "site"])
        for d in self.store.overview():
            st = d["state"]
            if st.get("receipts"):
                missing.add_metric([d["dev_eui"], d["site"]], missing_count(st["receipts"]))
            if st.get("last_seen"):
                seen.add_metric([d["dev_eui"], d["site"]], round(st["last_seen"], 3))
            if st.get("battery_mv") is not None:
                battery.add_metric([d["dev_eui"], d["site"]], st["battery_mv"])
        yield seen
        yield battery
        yield missing
        q = GaugeMetricFamily("vistelse_gateway_quarantined", "Quarantined messages in the store, by reason.",
                              labels=["reason"])
        for reason, n in sorted(self.store.quarantine_counts().items()):
            q.add_metric([reason], n)
        yield q
        yield GaugeMetricFamily("vistelse_gateway_start_time_seconds", "Start time of this process.",
                                value=self.metrics.started)
        if self.metrics.instance:
            # Prometheus labels each scrape with its target (instance="host:port"); this names the
            # gateway instance behind it, for dashboards of several instances on one database
            info = GaugeMetricFamily("vistelse_gateway_instance_info", "The gateway instance behind this endpoint.",
                                     labels=["gateway_instance"])
            info.add_metric([self.metrics.instance], 1)
            yield info


def render(metrics, store, sinks):
    """-> bytes in the Prometheus text format."""
    metrics.attach_store(store, sinks)
    return generate_latest(metrics.registry)
