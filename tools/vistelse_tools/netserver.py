"""A stand-in for ChirpStack v4's MQTT integration, for the demo and tests.

ChirpStack itself cannot run on a machine without its own package sources,
so the demo puts this in its place. It does only what the gateway sees of a
network server, with ChirpStack's real schemas (the `chirpstack-api`
protobuf classes):

- uplinks from a modem emulator become `integration.UplinkEvent`s published
  on `application/{application_id}/device/{dev_eui}/event/up`, as JSON
  (ChirpStack's default marshaling, zero fields omitted) or protobuf;
- joins become `integration.JoinEvent`s on `.../event/join`;
- downlinks published on `application/{application_id}/device/{dev_eui}/command/down`
  (`api.DeviceQueueItem` as JSON) are queued for the device and handed to
  the radio side at its next uplink, the way class A devices receive them.

It is not a LoRaWAN network server: no MAC layer, no MIC, no ADR. The modem
emulators keep frame counters, data rates and duty cycle.
"""
import datetime
import threading
import uuid

import paho.mqtt.client as mqtt
from chirpstack_api import api, gw, integration
from google.protobuf import json_format

# EU868 data rates 0-5 are LoRa SF12..SF7 at 125 kHz.
EU868_SF = {0: 12, 1: 11, 2: 10, 3: 9, 4: 8, 5: 7}
EU868_CHANNELS = (868100000, 868300000, 868500000)


class Device:
    """What the network server knows of a device (its ChirpStack record)."""

    def __init__(self, dev_eui, name, dev_addr=None, tags=None):
        self.dev_eui = dev_eui.lower()
        self.name = name
        self.dev_addr = dev_addr or self.dev_eui[-8:]
        self.tags = dict(tags or {})
        self.downlinks = []          # queued (fport, bytes, confirmed)
        self.uplinks = 0


class NetworkServer:
    """Publishes ChirpStack v4 events for uplinks; queues downlink commands.

    `on_downlink(dev_eui, fport, data, confirmed)` is not called directly:
    the radio side asks `next_downlink(dev_eui)` after each uplink, as a
    class A device only listens right after it sends.
    """

    def __init__(self, host, port, application_id, tenant_id, *, marshaling="json",
                 application_name="vistelse", tenant_name="municipality",
                 device_profile_id=None, device_profile_name="vistelse-eu868",
                 gateway_id="0016c001ff10a235", client_id=None):
        if marshaling not in ("json", "protobuf"):
            raise ValueError("marshaling must be json or protobuf")
        self.application_id = application_id
        self.tenant_id = tenant_id
        self.application_name = application_name
        self.tenant_name = tenant_name
        self.device_profile_id = device_profile_id or str(uuid.uuid5(uuid.NAMESPACE_URL, device_profile_name))
        self.device_profile_name = device_profile_name
        self.gateway_id = gateway_id
        self.marshaling = marshaling
        self.devices = {}
        self.commands = 0            # downlink commands received (tests wait for them)
        self._lock = threading.Lock()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=client_id or "vistelse-netserver-" + uuid.uuid4().hex[:8])
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise ConnectionError("no MQTT connection to %s:%d" % (host, port))

    def close(self):
        self._client.loop_stop()
        self._client.disconnect()

    def add_device(self, dev_eui, name, **kw):
        device = Device(dev_eui, name, **kw)
        with self._lock:
            self.devices[device.dev_eui] = device
        return device

    # --- topics ------------------------------------------------------------

    def topic(self, dev_eui, event):
        return "application/%s/device/%s/event/%s" % (self.application_id, dev_eui.lower(), event)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        client.subscribe("application/%s/device/+/command/down" % self.application_id, qos=1)
        self._subscribed.set()

    def _on_message(self, client, userdata, message):
        dev_eui = message.topic.split("/")[3].lower()
        item = json_format.Parse(message.payload, api.DeviceQueueItem(), ignore_unknown_fields=True)
        if item.dev_eui and item.dev_eui.lower() != dev_eui:
            return  # ChirpStack refuses a command whose body names another device
        with self._lock:
            device = self.devices.get(dev_eui)
            if device is not None:
                device.downlinks.append((item.f_port, bytes(item.data), item.confirmed))
            self.commands += 1

    def next_downlink(self, dev_eui):
        """The oldest queued downlink for the device, or None."""
        with self._lock:
            device = self.devices.get(dev_eui.lower())
            if device and device.downlinks:
                return device.downlinks.pop(0)
        return None

    # --- events ------------------------------------------------------------

    def _device_info(self, device):
        return integration.DeviceInfo(
            tenant_id=self.tenant_id, tenant_name=self.tenant_name,
            application_id=self.application_id, application_name=self.application_name,
            device_profile_id=self.device_profile_id, device_profile_name=self.device_profile_name,
            device_name=device.name, dev_eui=device.dev_eui, tags=device.tags)

    def _encode(self, event):
        if self.marshaling == "protobuf":
            return event.SerializeToString()
        return json_format.MessageToJson(event, indent=None)

    def uplink_event(self, dev_eui, fport, data, fcnt, dr=5, confirmed=False, rssi=-97, snr=7.5, when=None):
        """The UplinkEvent ChirpStack would publish for this frame."""
        device = self.devices[dev_eui.lower()]
        event = integration.UplinkEvent(
            deduplication_id=str(uuid.uuid4()), device_info=self._device_info(device),
            dev_addr=device.dev_addr, adr=True, dr=dr, f_cnt=fcnt, f_port=fport,
            confirmed=confirmed, data=bytes(data))
        event.time.FromDatetime(when or datetime.datetime.now(datetime.timezone.utc))
        rx = gw.UplinkRxInfo(gateway_id=self.gateway_id, uplink_id=int(uuid.uuid4().int & 0xFFFFFFFF),
                             rssi=rssi, snr=snr, channel=fcnt % len(EU868_CHANNELS),
                             crc_status=gw.CRCStatus.CRC_OK)
        rx.ns_time.CopyFrom(event.time)
        event.rx_info.append(rx)
        event.tx_info.frequency = EU868_CHANNELS[fcnt % len(EU868_CHANNELS)]
        event.tx_info.modulation.lora.CopyFrom(gw.LoraModulationInfo(
            bandwidth=125000, spreading_factor=EU868_SF.get(dr, 7), code_rate=gw.CodeRate.CR_4_5))
        return event

    def publish_uplink(self, dev_eui, fport, data, fcnt, **kw):
        """Publish one uplink (QoS 1); returns the event."""
        event = self.uplink_event(dev_eui, fport, data, fcnt, **kw)
        info = self._client.publish(self.topic(dev_eui, "up"), self._encode(event), qos=1)
        info.wait_for_publish(10)
        with self._lock:
            self.devices[dev_eui.lower()].uplinks += 1
        return event

    def publish_join(self, dev_eui, when=None):
        device = self.devices[dev_eui.lower()]
        event = integration.JoinEvent(deduplication_id=str(uuid.uuid4()),
                                      device_info=self._device_info(device), dev_addr=device.dev_addr)
        event.time.FromDatetime(when or datetime.datetime.now(datetime.timezone.utc))
        self._client.publish(self.topic(dev_eui, "join"), self._encode(event), qos=1).wait_for_publish(10)
        return event


def downlink_command(dev_eui, fport, data, confirmed=False):
    """The JSON body an application publishes on ChirpStack's command/down topic."""
    item = api.DeviceQueueItem(dev_eui=dev_eui.lower(), f_port=fport, data=bytes(data), confirmed=confirmed)
    return json_format.MessageToJson(item, indent=None)
