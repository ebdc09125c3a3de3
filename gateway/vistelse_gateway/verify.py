"""Identity and integrity checks on every uplink.

Each check raises `Rejected(reason, detail)`; the reasons are the labels of
`vistelse_gateway_rejections_total` and of the quarantine:

    unknown_device        no such DevEUI (or TTS device id) in the registry
    device_retired        registered but retired
    wrong_network         arrived from ChirpStack for a TTS device or vice versa
    application_mismatch  not from the network application it is registered with
    topic_mismatch        topic and event body name different devices/applications
    unexpected_fport      not the report port (fPort 1)
    no_payload            empty FRMPayload
    bad_tag               authenticity tag does not verify with the device key
    malformed_payload     tag fine but the report breaks the contract
    replay                a report sequence number already stored with other content
    seq_outside_window    sequence number further back than the replay window
    fcnt_replay           an old frame (lower LoRaWAN frame counter, no rejoin) re-sent
"""
import hmac

import vistelse_codec

from .uplink import Rejected, Uplink

U16 = 0xFFFF


def identify(batch, msg):
    """Registry lookup plus topic/body/application consistency -> device row."""
    if msg.network == "chirpstack":
        if msg.topic_device is not None and msg.topic_device != msg.dev_eui.hex():
            raise Rejected("topic_mismatch", "topic device %s, body devEui %s" % (msg.topic_device, msg.dev_eui.hex()))
        if msg.topic_application is not None and msg.topic_application.lower() != msg.application.lower():
            raise Rejected("topic_mismatch", "topic application %s, body applicationId %s"
                           % (msg.topic_application, msg.application))
        device = batch.device(msg.dev_eui)
        if device is None:
            raise Rejected("unknown_device", msg.dev_eui.hex())
    else:
        if msg.topic_device is not None and msg.topic_device != msg.device_id:
            raise Rejected("topic_mismatch", "topic device %s, body device_id %s" % (msg.topic_device, msg.device_id))
        if msg.topic_application is not None and msg.topic_application.split("@")[0] != msg.application:
            raise Rejected("topic_mismatch", "topic application %s, body application_id %s"
                           % (msg.topic_application, msg.application))
        app = msg.topic_application or msg.application
        device = batch.device(msg.dev_eui) if msg.dev_eui is not None else batch.device_by_tts_id(app, msg.device_id)
        if device is None:
            raise Rejected("unknown_device", msg.dev_eui.hex() if msg.dev_eui else "%s/%s" % (app, msg.device_id))
        if device.get("tts_device_id") and device["tts_device_id"] != msg.device_id:
            raise Rejected("topic_mismatch", "device id %s, registry says %s" % (msg.device_id, device["tts_device_id"]))
    if device["status"] != "active":
        raise Rejected("device_retired", device["dev_eui"])
    if device["network"] != msg.network:
        raise Rejected("wrong_network", "registered with %s, arrived from %s" % (device["network"], msg.network))
    registered = device["application"]
    if msg.network == "chirpstack":
        ok = registered.lower() == msg.application.lower()
    else:
        reg_app, _, reg_tenant = registered.partition("@")
        ok = reg_app == msg.application
        if ok and msg.topic_application is not None and reg_tenant:
            ok = msg.topic_application == registered
    if not ok:
        raise Rejected("application_mismatch", "registered with application %s, arrived from %s"
                       % (registered, msg.topic_application or msg.application))
    return device


def decode(batch, device, msg, predecoded=None):
    """Port, payload and tag checks, then strict decoding -> decoded report.

    `predecoded` is what an ingest worker process made of the frame without
    the key (the decoded report, or the PayloadError reason as a string); the
    tag is then checked here, first, exactly as the codec would."""
    if msg.f_port != vistelse_codec.FPORT_REPORT:
        raise Rejected("unexpected_fport", "fPort %d" % msg.f_port)
    if not msg.payload:
        raise Rejected("no_payload")
    key = batch.device_key(device["dev_eui"])
    if key is None:
        raise Rejected("unknown_device", "no tag key for %s" % device["dev_eui"])
    dev_eui = bytes.fromhex(device["dev_eui"])
    if predecoded is not None:
        frame = msg.payload
        if vistelse_codec.TAG_LEN < len(frame) <= vistelse_codec.MAX_FRAME:
            tag, message = frame[:vistelse_codec.TAG_LEN], frame[vistelse_codec.TAG_LEN:]
            if not hmac.compare_digest(tag, vistelse_codec.compute_tag(message, dev_eui, msg.f_port, key)):
                raise Rejected("bad_tag", "authenticity tag does not match")
        if isinstance(predecoded, str):
            raise Rejected("malformed_payload", predecoded)
        return predecoded
    try:
        return vistelse_codec.decode_uplink(msg.payload, msg.f_port, dev_eui=dev_eui, key=key)
    except vistelse_codec.PayloadError as exc:
        reason = "bad_tag" if "tag" in exc.reason and "match" in exc.reason else "malformed_payload"
        raise Rejected(reason, exc.reason) from None


def extend(reference, value16):
    """Extend a 16-bit wrapping counter to the integer nearest to `reference`."""
    d = (value16 - reference) & U16
    if d >= 0x8000:
        d -= 0x10000
    return reference + d


__all__ = ["identify", "decode", "extend", "Rejected", "Uplink"]
