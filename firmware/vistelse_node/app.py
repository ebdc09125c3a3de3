# Start-up: the node file, the board's pins, the parts, the node's loop.
#
# main.py calls start(). On a bench, or in the hardware-in-the-loop suite,
# the same start() runs with a recording in place of the sensor and for a
# bounded time:
#
#     import vistelse_node.app as app
#     app.start(replay="/scene.rec.jsonl", run_ms=130000)
#
# The node file (`vistelse.json`, from `vistelse provision`) names the
# board; the board file (boards/NAME.py) has every pin.
import json
import sys

import machine

from vistelse_node import flashfs
from vistelse_node.clock import SysClock, ticks_diff
from vistelse_node.node import Node
from vistelse_node.sensors import open_sensor

NODE_FILE = "vistelse.json"
# machine.reset_cause() codes, the same on the ESP32 and STM32 ports
RESET_CAUSES = {getattr(machine, "PWRON_RESET", 1): "power_on", getattr(machine, "HARD_RESET", 2): "hard",
                getattr(machine, "WDT_RESET", 3): "watchdog", getattr(machine, "DEEPSLEEP_RESET", 4): "deep_sleep",
                getattr(machine, "SOFT_RESET", 5): "soft"}


def log(*args):
    print(*args)


def load_board(name):
    return __import__("boards." + name, None, None, ["ARCH"])


def read_node_file():
    with open(NODE_FILE) as f:
        return json.load(f)


def uart(board, which, baudrate, rxbuf=512):
    kw = {"rxbuf": rxbuf}
    tx, rx = getattr(board, which + "_TX"), getattr(board, which + "_RX")
    if tx is not None:
        kw["tx"] = tx
    if rx is not None:
        kw["rx"] = rx
    return machine.UART(getattr(board, which + "_UART"), baudrate, **kw)


def open_modem(board, node_file, clock):
    if board.MODEM == "rak3172":
        from vistelse_node.modem.rak3172 import Rak3172 as Modem
    elif board.MODEM == "wioe5":
        from vistelse_node.modem.wioe5 import WioE5 as Modem
    else:
        raise ValueError("MODEM must be rak3172 or wioe5, not %r" % (board.MODEM,))
    modem = Modem(uart(board, "MODEM", Modem.baudrate), clock, seed=machine.unique_id()[-1])
    modem.setup(node_file["dev_eui"], node_file["join_eui"], node_file["app_key"])
    return modem


def battery_reader(board):
    if board.BATTERY_ADC_PIN is None:
        return None
    adc = machine.ADC(machine.Pin(board.BATTERY_ADC_PIN))
    try:
        adc.atten(machine.ADC.ATTN_11DB)     # ESP32: the full 0-3.3 V range
    except AttributeError:
        pass

    def read_mv():
        if hasattr(adc, "read_uv"):
            return adc.read_uv() * board.BATTERY_DIVIDER // 1000
        return adc.read_u16() * 3300 * board.BATTERY_DIVIDER // 65535
    return read_mv


def start(replay=None, run_ms=None, board_name=None):
    """Build the node and run it (for run_ms, or for ever).

    Files (the node file, the queue, the configuration) are in the current
    directory: the flash's root on every port (/ on the ESP32, /flash on
    the STM32), where main.py starts.
    """
    clock = SysClock()
    cause = RESET_CAUSES.get(machine.reset_cause())
    node_file = read_node_file()
    board = load_board(board_name or node_file["board"])
    if replay:
        from vistelse_node.sensors.replay import ReplaySensor
        sensor = ReplaySensor(open(replay), clock)
        node_file = dict(node_file)
        node_file["mount"] = sensor.header.get("mount") or node_file.get("mount")
    else:
        mount = node_file.get("mount") or {}
        sensor = open_sensor(node_file["sensor"], uart=board.SENSOR_UART, tx=board.SENSOR_TX, rx=board.SENSOR_RX,
                             i2c=board.I2C_ID, sda=board.I2C_SDA, scl=board.I2C_SCL,
                             data_path=board.TOF_DATA_PATH, clock=clock, rotate=mount.get("rotate", 0),
                             mirror=mount.get("mirror", False), freq=getattr(board, "I2C_FREQ", 1000000))
    modem = open_modem(board, node_file, clock)
    # The watchdog starts last: sensor and modem set-up (the ToF's firmware
    # upload takes seconds) happen before it can bite.
    wdt = machine.WDT(timeout=board.WDT_TIMEOUT_MS)
    if hasattr(sensor, "feed"):
        sensor.feed = wdt.feed        # a ToF re-initialisation takes seconds: fed between its steps
    node = Node(node_file, sensor, modem, clock, flashfs.FlashFS("."), wdt=wdt,
                battery=battery_reader(board), reset_cause=cause, log=log)
    log("vistelse node", node_file["dev_eui"], "on", board.__name__, "reset cause", cause)
    if run_ms is None:
        node.run()
    t0 = clock.ticks_ms()
    while ticks_diff(clock.ticks_ms(), t0) < run_ms:
        node.step()
        clock.sleep_ms(20)
    return node
