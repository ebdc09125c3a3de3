# Starts the node after boot.py. The board is named in vistelse.json.
#
# For three seconds after a reset the node waits, so that someone at the
# USB REPL can press Ctrl-C before the watchdog starts (once it runs, an
# interrupted loop resets the board when the watchdog bites). A file named
# `hold` on the flash keeps the node from starting at all (for installers:
# `mpremote fs touch :hold`, then reset; `mpremote fs rm :hold` to undo).
import time

SAFE_START_MS = 3000


def _held():
    try:
        open("hold").close()
        return True
    except OSError:
        return False


if _held():
    print("vistelse: 'hold' is on the flash, the node does not start")
else:
    print("vistelse: starting in %d s (Ctrl-C for the REPL)" % (SAFE_START_MS // 1000))
    time.sleep_ms(SAFE_START_MS)
    try:
        import vistelse_node.app
        vistelse_node.app.start()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        # A sensor or modem that does not answer at start-up (loose cable,
        # brown-out): say why on the USB console, wait, and start afresh
        # rather than sit at the REPL for ever.
        import sys
        import machine
        sys.print_exception(exc)
        print("vistelse: start-up failed; resetting in 60 s")
        time.sleep_ms(60000)
        machine.reset()
