"""codecs/ttn/ passes The Things Network device repository's own checks.

The repository (github.com/TheThingsNetwork/lorawan-devices) accepts a vendor
folder when `npm run validate` (bin/validate.js) passes and its CI's
`prettier --check schema.json "vendor/**/*.yaml" "bin/**/*.js"` passes.
tests/ttn_validate.js reproduces the first with the repository's schemas
(tests/ttn_device_repository/), the second runs prettier as pinned there.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TTN = os.path.join(ROOT, "codecs", "ttn")
VENDOR = os.path.join(TTN, "vendor", "vistelse")
VALIDATE = os.path.join(ROOT, "tests", "ttn_validate.js")
PRETTIER = os.path.join(ROOT, "node_modules", ".bin", "prettier")
sys.path.insert(0, TTN)
import make_vendor  # noqa: E402


def validate(root):
    return subprocess.run(["node", VALIDATE, str(root), "--vendor", "vistelse"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def validated():
    proc = validate(TTN)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_vendor_folder_passes_the_repository_validator(validated):
    examples = sum(len(make_vendor.examples(name)) for _, name in make_vendor.SECTIONS)
    # every example of the codec, run once for each of the two devices that use it
    assert validated == {"vendors": 1, "endDevices": 2, "profiles": 1, "codecs": 2, "examples": 2 * examples,
                         "photos": ["vendor/vistelse/radar-node.png", "vendor/vistelse/tof-node.png"]}


def test_every_vector_is_an_example_unless_it_needs_the_tag_key():
    for section, name in make_vendor.SECTIONS:
        with open(os.path.join(ROOT, "codecs", "vectors", name)) as f:
            vectors = json.load(f)
        examples = make_vendor.examples(name)
        forged = [v for v in vectors if v["output"].get("errors") == [make_vendor.NEEDS_KEY]]
        assert forged and len(examples) == len(vectors) - len(forged)
        for ex in examples:
            assert ex["output"]["warnings"] == [] and ("data" in ex["output"]) != bool(ex["output"]["errors"])


def test_codec_yaml_is_generated_from_the_vectors():
    assert make_vendor.main(["--check"]) == 0


def test_formatted_as_the_repository_formats(tmp_path):
    proc = subprocess.run([PRETTIER, "--check", "codecs/ttn/vendor/**/*.yaml"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the repository's configuration rejects double quotes
    bad = tmp_path / "unformatted.yaml"
    bad.write_text('name: "Vistelse"\n')
    proc = subprocess.run([PRETTIER, "--config", os.path.join(TTN, ".prettierrc"), "--check", str(bad)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0


def test_pictures_decode_as_png():
    """bin/validate-image decodes each photo with Go's image.Decode."""
    for name in ("radar-node.png", "tof-node.png"):
        with Image.open(os.path.join(VENDOR, name)) as im:
            im.load()
            assert im.format == "PNG" and max(im.size) <= 2000


def test_codec_file_is_the_codec():
    with open(os.path.join(VENDOR, "vistelse-codec.js"), "rb") as a, \
            open(os.path.join(ROOT, "codecs", "js", "vistelse-codec.js"), "rb") as b:
        assert a.read() == b.read()


def copy_of_folder(tmp_path):
    dst = tmp_path / "repo"
    shutil.copytree(TTN, dst, symlinks=False)
    return dst


def test_validator_compares_the_whole_output(tmp_path):
    """An expected output without the codec's empty `warnings` fails, as in
    the device repository."""
    root = copy_of_folder(tmp_path)
    codec = root / "vendor" / "vistelse" / "vistelse-codec.yaml"
    text = codec.read_text()
    assert "        warnings: []\n" in text
    codec.write_text(text.replace("        warnings: []\n", "", 1))
    proc = validate(root)
    assert proc.returncode == 1 and "does not match" in proc.stderr, proc.stderr[-2000:]


def test_validator_checks_the_schemas(tmp_path):
    root = copy_of_folder(tmp_path)
    codec = root / "vendor" / "vistelse" / "vistelse-codec.yaml"
    codec.write_text(codec.read_text().replace("fPort: 1\n", "fPort: 0\n", 1))
    proc = validate(root)
    assert proc.returncode == 1 and "codec vistelse-codec invalid" in proc.stderr, proc.stderr[-2000:]
    root = copy_of_folder(tmp_path / "b")
    device = root / "vendor" / "vistelse" / "radar-node.yaml"
    device.write_text(device.read_text().replace("  - radar\n", "  - people\n"))
    proc = validate(root)
    assert proc.returncode == 1 and "radar-node: invalid" in proc.stderr, proc.stderr[-2000:]
