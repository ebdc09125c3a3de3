"""`vistelse provision` against a real gRPC server and the gateway's registry."""
import json
import os
import stat
from concurrent import futures

import grpc
import pytest
from chirpstack_api import api

from vistelse_tools import provision

TOKEN = "test-api-token"
APP = "5b3c1a8e-6d3f-4f7e-9a35-2d9f1c0e7b11"
PROFILE = "0c5e6e2c-7e3a-4d3c-8f55-3f1f7a0f9d21"


class DeviceService(api.DeviceServiceServicer):
    """The two calls provisioning makes, with ChirpStack's authorization rule."""

    def __init__(self):
        self.devices, self.keys = {}, {}

    def _auth(self, context):
        if ("authorization", "Bearer " + TOKEN) not in context.invocation_metadata():
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "authorization token invalid")

    def Create(self, request, context):
        self._auth(context)
        if request.device.dev_eui in self.devices:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "object already exists")
        self.devices[request.device.dev_eui] = request.device
        from google.protobuf import empty_pb2
        return empty_pb2.Empty()

    def CreateKeys(self, request, context):
        self._auth(context)
        if request.device_keys.dev_eui not in self.devices:
            context.abort(grpc.StatusCode.NOT_FOUND, "object does not exist")
        self.keys[request.device_keys.dev_eui] = request.device_keys
        from google.protobuf import empty_pb2
        return empty_pb2.Empty()


@pytest.fixture
def chirpstack():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    service = DeviceService()
    api.add_DeviceServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield service, "127.0.0.1:%d" % port
    server.stop(None)


def test_provision_registers_everywhere(tmp_path, chirpstack):
    service, target = chirpstack
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "gateway.toml").write_text('[gateway]\nstate_dir = "state"\n[http]\nenabled = false\n')
    (tmp_path / "state").mkdir()
    out = tmp_path / "node"
    rc = provision.main([
        "--dev-eui", "70B3D57ED0000042", "--name", "stortorget-north", "--sensor", "ld2450",
        "--application", APP, "--chirpstack", target, "--token-file", str(tmp_path / "token"),
        "--device-profile", PROFILE, "--gateway-config", str(tmp_path / "gateway.toml"),
        "--site", "Stortorget", "--owner", "Stadsbyggnadskontoret", "--contact", "iot@example.se",
        "--installed", "2026-05-04", "--out", str(out),
        "--zones", "[[[-2000, 500], [2000, 500], [2000, 5000], [-2000, 5000]]]",
        "--lines", "[[[-1500, 3000], [1500, 3000]]]"])
    assert rc == 0
    eui = "70b3d57ed0000042"
    # ChirpStack got the device and its OTAA key (AppKey in nwk_key for LoRaWAN 1.0.x).
    device = service.devices[eui]
    assert device.application_id == APP and device.device_profile_id == PROFILE
    assert device.name == "stortorget-north"
    node = json.loads((out / "vistelse.json").read_text())
    assert service.keys[eui].nwk_key == node["app_key"] and len(node["app_key"]) == 32
    # The tag key never went to ChirpStack, and files holding secrets are private.
    assert node["tag_key"] not in str(device) + str(service.keys[eui])
    for name in ("vistelse.json", eui + ".tagkey"):
        assert stat.S_IMODE(os.stat(out / name).st_mode) == 0o600
    assert node["config"]["zones"][0][2] == [2000, 5000] and node["config"]["interval_s"] == 300
    # The gateway registry has the device, its key and its register entry.
    from vistelse_gateway.store import open_store
    store = open_store({"path": str(tmp_path / "state" / "gateway.sqlite")})
    try:
        row = store.get_device(eui)
        assert row["application"] == APP and row["status"] == "active"
        assert row["register"]["review_due"] == "2027-05-04"
        assert row["register"]["owner"] == "Stadsbyggnadskontoret"
        assert store.device_key(eui) == bytes.fromhex(node["tag_key"])
    finally:
        store.close()


def test_wrong_token_is_reported_and_nothing_written(tmp_path, chirpstack):
    service, target = chirpstack
    (tmp_path / "token").write_text("wrong")
    rc = provision.main(["--name", "x", "--application", APP, "--chirpstack", target,
                         "--token-file", str(tmp_path / "token"), "--device-profile", PROFILE,
                         "--out", str(tmp_path / "node")])
    assert rc == 1
    assert not service.devices
    assert not (tmp_path / "node").exists()


def test_interval_is_seconds():
    assert provision.main(["--name", "x", "--application", APP, "--interval", "5"]) == 2


def test_generated_dev_eui_is_locally_administered():
    ids = provision.new_secrets()
    first = int(ids["dev_eui"][:2], 16)
    assert first & 0x02 and not first & 0x01
    assert len(bytes.fromhex(ids["tag_key"])) == 32 and len(bytes.fromhex(ids["app_key"])) == 16


def test_bad_gateway_config_stops_before_chirpstack(tmp_path, chirpstack):
    service, target = chirpstack
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "gateway.toml").write_text('[gatewy]\n')
    rc = provision.main(["--name", "x", "--application", APP, "--chirpstack", target,
                         "--token-file", str(tmp_path / "token"), "--device-profile", PROFILE,
                         "--gateway-config", str(tmp_path / "gateway.toml"), "--out", str(tmp_path / "node")])
    assert rc == 2 and not service.devices
