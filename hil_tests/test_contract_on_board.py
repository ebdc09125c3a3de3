"""The node codec, as deployed (compiled .mpy), meets every contract vector on the board."""
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    with open(os.path.join(ROOT, "codecs", "vectors", name)) as f:
        return json.load(f)


def test_deployed_files_are_the_compiled_ones(deployed):
    out = deployed.run("import vistelse_mcodec, os\nprint(vistelse_mcodec.__file__)\nprint(sorted(os.listdir('lib')))")
    path, listing = out.strip().splitlines()[-2:]
    assert path.endswith("lib/vistelse_mcodec.mpy")
    assert "vistelse_mcodec.mpy" in listing


def test_uplink_vectors_encode_byte_for_byte_on_the_board(deployed):
    vectors = [v for v in load("uplink.json") if "data" in v["output"] and v.get("roundtrip", True)]
    for v in vectors:
        var = v["input"]["variables"]
        out = deployed.run("import json, vistelse_mcodec as mc\n"
                           "print(list(mc.encode_uplink(json.loads(%r), bytes.fromhex(%r), bytes.fromhex(%r))))"
                           % (json.dumps(v["output"]["data"]), var["devEui"], var["tagKey"]))
        assert json.loads(out.strip().splitlines()[-1]) == v["input"]["bytes"], v["description"]


def test_downlink_vectors_decode_or_fail_with_the_contract_reason_on_the_board(deployed):
    for v in load("downlink.json"):
        var = v["input"]["variables"]
        out = deployed.run(
            "import json, vistelse_mcodec as mc\n"
            "try:\n"
            "    r = {'data': mc.decode_downlink(bytes(%r), %d, bytes.fromhex(%r), bytes.fromhex(%r))}\n"
            "except mc.PayloadError as e:\n"
            "    r = {'errors': [str(e)]}\n"
            "print(json.dumps(r))" % (v["input"]["bytes"], v["input"]["fPort"], var["devEui"], var["tagKey"]))
        assert json.loads(out.strip().splitlines()[-1]) == v["output"], v["description"]
