"""Downlinks (configurations, receipts): encode with the contract, enqueue through the network server.

    chirpstack-grpc   DeviceService.Enqueue (chirpstack-api), metadata authorization: Bearer <API token>
    chirpstack-mqtt   application/{application_id}/device/{dev_eui}/command/down (JSON)
    tts               The Things Stack push: POST {url}/api/v3/as/applications/{app}/webhooks/{webhook}/devices/{id}/down/push

The store records the configuration version as pending; the pipeline marks
it applied when an uplink reports that version in status.config_version, or
rejected when the node raises the config_rejected health flag.
"""
import base64
import json
import logging
import queue
import threading
import urllib.error
import urllib.request

import vistelse_codec

from . import config as config_mod

log = logging.getLogger("vistelse.downlink")


class DownlinkError(Exception):
    pass


def next_version(store, dev_eui):
    last = store.last_config_version(dev_eui)
    v = (last % 65535) + 1     # 1..65535, wrapping past 0
    return v


def encode(config, dev_eui, key):
    try:
        return vistelse_codec.encode_downlink(config, dev_eui=bytes.fromhex(dev_eui), key=key)
    except vistelse_codec.PayloadError as exc:
        raise DownlinkError("the configuration breaks the contract: %s" % exc.reason) from None


def send_chirpstack_grpc(target, token, dev_eui, data, f_port=vistelse_codec.FPORT_CONFIG, tls=False, timeout=10):
    import grpc
    from chirpstack_api import api
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if tls else grpc.insecure_channel(target)
    try:
        stub = api.DeviceServiceStub(channel)
        req = api.EnqueueDeviceQueueItemRequest(
            queue_item=api.DeviceQueueItem(dev_eui=dev_eui, confirmed=False, f_port=f_port, data=data))
        resp = stub.Enqueue(req, metadata=[("authorization", "Bearer %s" % token)], timeout=timeout)
        return resp.id
    except grpc.RpcError as exc:
        raise DownlinkError("ChirpStack gRPC Enqueue failed: %s %s" % (exc.code().name, exc.details())) from None
    finally:
        channel.close()


def send_chirpstack_mqtt(client_cfg, application, dev_eui, data, f_port=vistelse_codec.FPORT_CONFIG, timeout=10):
    from .mqttutil import make_client
    cfg = dict(client_cfg)
    cfg["client_id"] = cfg.get("downlink_client_id", "vistelse-downlink")
    client = make_client(cfg, clean=True)
    topic = "application/%s/device/%s/command/down" % (application, dev_eui)
    body = json.dumps({"devEui": dev_eui, "confirmed": False, "fPort": f_port,
                       "data": base64.b64encode(data).decode()})
    try:
        client.connect(cfg.get("host", "127.0.0.1"), int(cfg.get("port", 1883)), keepalive=30)
        client.loop_start()
        info = client.publish(topic, body, qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise DownlinkError("the broker did not acknowledge the downlink")
    except OSError as exc:
        raise DownlinkError("cannot reach the MQTT broker: %s" % exc) from None
    finally:
        client.disconnect()
        client.loop_stop()
    return topic


def send_tts(url, api_key, application, webhook_id, device_id, data, f_port=vistelse_codec.FPORT_CONFIG, timeout=10):
    app = application.split("@")[0]
    endpoint = "%s/api/v3/as/applications/%s/webhooks/%s/devices/%s/down/push" % (
        url.rstrip("/"), app, webhook_id, device_id)
    body = json.dumps({"downlinks": [{"f_port": f_port, "frm_payload": base64.b64encode(data).decode(),
                                      "priority": "NORMAL"}]}).encode()
    req = urllib.request.Request(endpoint, data=body, method="POST", headers={
        "Authorization": "Bearer " + api_key, "Content-Type": "application/json",
        "User-Agent": "vistelse-gateway"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        raise DownlinkError("The Things Stack refused the push: HTTP %d %s" % (exc.code, exc.read()[:200])) from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownlinkError("cannot reach The Things Stack: %s" % exc) from None
    return endpoint


def default_via(cfg, device):
    return cfg["downlink"].get("via") or ("tts" if device.get("network") == "tts" else "chirpstack-grpc")


def send(cfg, device, data, f_port=vistelse_codec.FPORT_CONFIG, via=None):
    """Enqueue `data` for `device` the way [downlink] says; -> detail text.
    Raises DownlinkError (or config.ConfigError for an unreadable secret)."""
    dl = cfg["downlink"]
    eui = device["dev_eui"]
    via = via or default_via(cfg, device)
    if via == "chirpstack-grpc":
        token = config_mod._read_secret(dl, "downlink", "chirpstack_token")
        if not dl.get("chirpstack_grpc") or not token:
            raise DownlinkError("[downlink] needs chirpstack_grpc (host:port) and "
                                "chirpstack_token or chirpstack_token_file")
        return send_chirpstack_grpc(dl["chirpstack_grpc"], token, eui, data, f_port=f_port,
                                    tls=bool(dl.get("chirpstack_tls", False)))
    if via == "chirpstack-mqtt":
        src = next((s for s in cfg["sources"] if s["network"] == "chirpstack"), None)
        if src is None:
            raise DownlinkError("no [[source]] of type chirpstack-mqtt to publish through")
        return send_chirpstack_mqtt(src, device["application"], eui, data, f_port=f_port)
    key = config_mod._read_secret(dl, "downlink", "tts_api_key")
    if not dl.get("tts_url") or not key or not device.get("tts_device_id"):
        raise DownlinkError("[downlink] needs tts_url, tts_webhook_id and tts_api_key(_file); "
                            "the device needs its tts_device_id")
    return send_tts(dl["tts_url"], key, device["application"], dl.get("tts_webhook_id", "vistelse"),
                    device["tts_device_id"], data, f_port=f_port)


class ReceiptSender:
    """Sends the pipeline's receipts (fPort 3) in a thread of its own, so a
    slow network server never holds up ingest. A receipt that cannot be
    sent is logged and dropped: the next one the gateway decides on says
    everything it would have said (receipts are cumulative)."""

    def __init__(self, cfg, send_fn=None):
        self.cfg = cfg
        self.send_fn = send_fn or (lambda device, data: send(cfg, device, data, f_port=vistelse_codec.FPORT_RECEIPT))
        self.queue = queue.Queue(maxsize=10000)
        self.sent = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="receipts", daemon=True)
        self._thread.start()

    def __call__(self, dev_eui, device, frame):
        try:
            self.queue.put_nowait((device, frame))
        except queue.Full:
            self.failed += 1

    def _run(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            device, frame = item
            try:
                self.send_fn(device, frame)
                self.sent += 1
            except (DownlinkError, config_mod.ConfigError) as exc:
                self.failed += 1
                log.warning("receipt for %s not sent: %s", device["dev_eui"], exc)
            finally:
                self.queue.task_done()

    def stop(self):
        self.queue.put(None)
        self._thread.join(5)
