"""Vistelse gateway: LoRaWAN network server -> verified, stored reports -> city platform.

Data flow (one module per step):

    ingest/   ChirpStack v4 (MQTT JSON/protobuf, HTTP) and The Things Stack v3
              (MQTT, webhook) messages -> one normalised `Uplink` / `NetworkEvent`
    verify.py registry, topic/application consistency, tag, replay, frame counter
    pipeline.py  decode with vistelse_codec, extend 16-bit counters, commit a batch
    store/    storage interface; SQLite (WAL) is the embedded default
    forward/  sinks behind one interface, each fed by a durable outbox
    web/      operator surface: health, metrics, status, data view, export, register
    service.py   `vistelse gateway` (systemd Type=notify service)
"""
__version__ = "0.1.0"
