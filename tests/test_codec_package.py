"""The Python codec installs and works on its own, for other municipalities."""
import os
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_wheel_holds_only_the_codec_and_needs_only_cbor2(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), os.path.join(ROOT, "codecs", "python")], check=True)
    wheel, = [p for p in tmp_path.iterdir() if p.suffix == ".whl"]
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read([n for n in names if n.endswith("METADATA")][0]).decode()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"vistelse_codec"}
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [r.split(">")[0].split("<")[0].split("=")[0].strip() for r in requires] == ["cbor2"]


def test_codec_imports_nothing_but_cbor2_and_the_standard_library():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import vistelse_codec\n"
        "extra = sorted({m.split('.')[0] for m in set(sys.modules) - before}"
        " - set(sys.stdlib_module_names) - {'vistelse_codec', 'cbor2', '_cbor2'})\n"
        "print(','.join(extra))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
