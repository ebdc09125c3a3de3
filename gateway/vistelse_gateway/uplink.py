"""The normalised forms every ingest path produces."""
from dataclasses import dataclass, field
from typing import Optional


class Rejected(Exception):
    """A message the gateway will not accept, with a short machine reason.

    `reason` is a stable identifier (metrics label, quarantine column);
    `detail` is for people.
    """

    def __init__(self, reason, detail=""):
        Exception.__init__(self, "%s: %s" % (reason, detail) if detail else reason)
        self.reason = reason
        self.detail = detail


class Ignored(Exception):
    """A well-formed message the gateway does not keep (ack, txack, ...): acknowledged, dropped."""


@dataclass
class Uplink:
    """One uplink frame, whatever network server or transport it came through."""
    source: str                  # chirpstack-mqtt-json, chirpstack-mqtt-pb, chirpstack-http, tts-mqtt, tts-webhook
    network: str                 # "chirpstack" or "tts"
    application: str             # ChirpStack application UUID, or TTS "app@tenant" / "app"
    dev_eui: Optional[bytes]     # 8 bytes; TTS may omit it (device_id then)
    device_id: Optional[str]     # TTS device id (ChirpStack: device name)
    f_port: int
    f_cnt: int
    payload: bytes               # FRMPayload
    time: Optional[float]        # receive time at the network server, Unix seconds
    dedup_id: str = ""           # ChirpStack deduplicationId / TTS correlation id
    rssi: Optional[float] = None
    snr: Optional[float] = None
    dr: Optional[int] = None
    gateways: int = 0
    topic: str = ""
    topic_application: Optional[str] = None   # what the topic says, checked against the body
    topic_device: Optional[str] = None        # DevEUI hex (ChirpStack) or device id (TTS)
    raw: bytes = b""
    extra: dict = field(default_factory=dict)


@dataclass
class NetworkEvent:
    """join / status / log events worth keeping."""
    source: str
    network: str
    kind: str                    # join, status, log
    application: str
    dev_eui: Optional[bytes]
    device_id: Optional[str]
    time: Optional[float]
    body: dict
    topic: str = ""
    topic_application: Optional[str] = None
    topic_device: Optional[str] = None
    raw: bytes = b""


def eui_from_hex(text, what="DevEUI"):
    if not isinstance(text, str):
        raise Rejected("malformed", "%s must be a hex string" % what)
    text = text.strip().replace("-", "").replace(":", "")
    if len(text) != 16:
        raise Rejected("malformed", "%s must be 16 hex digits" % what)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise Rejected("malformed", "%s must be 16 hex digits" % what) from None
