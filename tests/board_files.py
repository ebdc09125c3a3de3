"""Facts a board file states (firmware/boards/<name>.py), read as text: the
board files import `machine`, which only a board (or the virtual board) has."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = ("FREE_HEAP", "SENSORS", "FS_BYTES", "FROZEN_REQUIRED", "WDT_TIMEOUT_MS")


def board_facts(name):
    text = open(os.path.join(ROOT, "firmware", "boards", name + ".py")).read()
    scope = {}
    for key in KEYS:
        line = re.search(r"^%s = (.*?)(\s+#.*)?$" % key, text, re.M).group(1)
        scope[key] = eval(line, {})
    return scope
