"""Generic webhook: POST {"items": [report, ...]} as JSON.

Each report carries a stable `id` ("vistelse:{dev_eui}:{seq}") and the
request an `Idempotency-Key` header derived from the ids, so a receiver can
drop redeliveries after a gateway crash.
"""
import hashlib

from .base import Sink, report_json


class WebhookSink(Sink):
    max_batch = 100

    def __init__(self, name, cfg, store):
        Sink.__init__(self, name, cfg, store)
        if not cfg.get("url"):
            raise ValueError("sink %r: url is required" % name)
        self.url = cfg["url"]

    def deliver(self, items):
        body = {"items": [report_json(i) for i in items]}
        key = hashlib.sha256(",".join(r["id"] for r in body["items"]).encode()).hexdigest()
        self.http("POST", self.url, body, headers={"Idempotency-Key": key})
