"""paho-mqtt client construction shared by the MQTT source and the MQTT sink."""
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def protocol(cfg):
    version = str(cfg.get("protocol", "5"))
    if version in ("5", "5.0", "mqttv5"):
        return mqtt.MQTTv5
    if version in ("3.1.1", "311", "mqttv311"):
        return mqtt.MQTTv311
    raise ValueError("mqtt protocol must be 5 or 3.1.1, not %r" % version)


def make_client(cfg, clean=False, manual_ack=False):
    proto = protocol(cfg)
    kwargs = dict(callback_api_version=CallbackAPIVersion.VERSION2, client_id=cfg.get("client_id", ""),
                  protocol=proto, manual_ack=manual_ack)
    if proto != mqtt.MQTTv5:
        kwargs["clean_session"] = clean
    client = mqtt.Client(**kwargs)
    if cfg.get("username"):
        client.username_pw_set(cfg["username"], cfg.get("password"))
    tls = cfg.get("tls")
    if tls:
        tls = tls if isinstance(tls, dict) else {}
        client.tls_set(ca_certs=tls.get("ca_file"), certfile=tls.get("cert_file"), keyfile=tls.get("key_file"),
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if tls.get("insecure"):
            client.tls_insecure_set(True)
    client.reconnect_delay_set(float(cfg.get("reconnect_min_s", 1)), float(cfg.get("reconnect_max_s", 60)))
    client.max_inflight_messages_set(int(cfg.get("max_inflight", 1000)))
    client.max_queued_messages_set(0)
    return client


def connect_properties(cfg, clean=False):
    """MQTT v5 CONNECT properties: persistent session and a receive window."""
    props = Properties(PacketTypes.CONNECT)
    if not clean:
        props.SessionExpiryInterval = int(cfg.get("session_expiry_s", 7 * 24 * 3600))
    props.ReceiveMaximum = int(cfg.get("receive_maximum", 4000))
    return props
