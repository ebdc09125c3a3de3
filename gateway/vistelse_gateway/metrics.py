"""In-process counters, rendered in Prometheus text format with gauges from the store."""
import threading
import time


class Metrics:
    def __init__(self, instance=None):
        self.instance = instance    # gateway.instance: a label on every sample
        self._lock = threading.Lock()
        self.counters = {}          # (name, labels tuple) -> value
        self.started = time.time()
        self.last_batch_at = None

    def inc(self, name, value=1, **labels):
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + value

    def get(self, name, **labels):
        return self.counters.get((name, tuple(sorted(labels.items()))), 0)

    def total(self, name):
        return sum(v for (n, _), v in list(self.counters.items()) if n == name)


HELP = {
    "vistelse_gateway_uplinks_total": ("counter", "Uplinks processed, by outcome (accepted, duplicate, rejected, ignored)."),
    "vistelse_gateway_messages_total": ("counter", "Other network-server messages (join, status, log, ack...), by outcome."),
    "vistelse_gateway_rejections_total": ("counter", "Rejected (quarantined) messages, by reason."),
    "vistelse_gateway_events_total": ("counter", "Network events kept, by kind (join, status, log)."),
    "vistelse_gateway_intervals_stored_total": ("counter", "Report intervals committed."),
    "vistelse_gateway_warnings_total": ("counter", "Accepted uplinks with a warning, by kind."),
    "vistelse_gateway_store_errors_total": ("counter", "Failed store commits (the batch is retried, nothing is acknowledged)."),
    "vistelse_gateway_sink_deliveries_total": ("counter", "Reports delivered, by sink."),
    "vistelse_gateway_sink_failures_total": ("counter", "Failed delivery attempts, by sink and reason."),
    "vistelse_gateway_mqtt_connections_total": ("counter", "MQTT (re)connections, by source."),
}


def _esc(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels):
    if not labels:
        return ""
    return "{" + ",".join('%s="%s"' % (k, _esc(v)) for k, v in labels) + "}"


def render(metrics, store, sinks, now=None):
    now = now or time.time()
    out = []
    by_name = {}
    for (name, labels), value in sorted(metrics.counters.items()):
        by_name.setdefault(name, []).append((labels, value))
    for name in sorted(set(HELP) | set(by_name)):
        kind, text = HELP.get(name, ("counter", name))
        out.append("# HELP %s %s" % (name, text))
        out.append("# TYPE %s %s" % (name, kind))
        for labels, value in by_name.get(name, []):
            out.append("%s%s %s" % (name, _labels(labels), value))
    stats = store.outbox_stats([s.name for s in sinks], now) if sinks else {}
    for name, help_text, field in (
            ("vistelse_gateway_outbox_depth", "Reports waiting for delivery, by sink.", "depth"),
            ("vistelse_gateway_outbox_oldest_age_seconds", "Age of the oldest undelivered report, by sink.", "age_s"),
            ("vistelse_gateway_outbox_dead", "Reports a sink refused permanently, by sink.", "dead")):
        out.append("# HELP %s %s" % (name, help_text))
        out.append("# TYPE %s gauge" % name)
        for sink, st in sorted(stats.items()):
            out.append('%s{sink="%s"} %s' % (name, _esc(sink), round(st[field], 3)))
    out.append("# HELP vistelse_gateway_device_last_seen_timestamp_seconds Last accepted uplink per device.")
    out.append("# TYPE vistelse_gateway_device_last_seen_timestamp_seconds gauge")
    out.append("# HELP vistelse_gateway_device_battery_millivolts Last reported battery voltage per device.")
    out.append("# TYPE vistelse_gateway_device_battery_millivolts gauge")
    for d in store.overview():
        st = d["state"]
        lbl = 'dev_eui="%s",site="%s"' % (d["dev_eui"], _esc(d["site"]))
        if st.get("last_seen"):
            out.append("vistelse_gateway_device_last_seen_timestamp_seconds{%s} %.3f" % (lbl, st["last_seen"]))
        if st.get("battery_mv") is not None:
            out.append("vistelse_gateway_device_battery_millivolts{%s} %d" % (lbl, st["battery_mv"]))
    out.append("# HELP vistelse_gateway_quarantined Quarantined messages in the store, by reason.")
    out.append("# TYPE vistelse_gateway_quarantined gauge")
    for reason, n in sorted(store.quarantine_counts().items()):
        out.append('vistelse_gateway_quarantined{reason="%s"} %d' % (_esc(reason), n))
    out.append("# HELP vistelse_gateway_start_time_seconds Start time of this process.")
    out.append("# TYPE vistelse_gateway_start_time_seconds gauge")
    out.append("vistelse_gateway_start_time_seconds %.3f" % metrics.started)
    if metrics.instance:
        # Prometheus labels each scrape with its target (instance="host:port"); this names the
        # gateway instance behind it, for dashboards of several instances on one database
        out.append("# HELP vistelse_gateway_instance_info The gateway instance behind this endpoint.")
        out.append("# TYPE vistelse_gateway_instance_info gauge")
        out.append('vistelse_gateway_instance_info{gateway_instance="%s"} 1' % _esc(metrics.instance))
    return "\n".join(out) + "\n"
