# ESP32-DevKitC (ESP32-WROOM-32 or ESP32-WROVER-E) + Hi-Link LD2450 radar + RAK3172 (RUI3).
#
# One pin map for both modules: GPIO16/17 are the PSRAM's on a WROVER and
# GPIO6-11 the flash's on both (Espressif, ESP32-WROVER-E and ESP32-WROOM-32E
# datasheets, pin descriptions), so none of them is used.
#
# Wiring (docs/hil.md has the picture):
#   GPIO25 UART1 TX -> modem RX      GPIO26 UART1 RX <- modem TX
#   GPIO4  UART2 TX -> LD2450 RX     GPIO5  UART2 RX <- LD2450 TX
#   GPIO21 SDA, GPIO22 SCL           VL53L5CX instead of the radar (hardware I2C 0)
#   GPIO35 (ADC1, input only)        battery through a 100k/100k divider
# The LD2450 needs 5 V (about 120 mA) from the board's 5V pin; its UART is
# 3.3 V. UART0 is the USB REPL and stays free for mpremote.
#
# Memory (MicroPython ESP32_GENERIC firmware, 1.22-1.29; ports/esp32: the GC
# heap grows on demand from the IDF heap): about 110 KB free for Python on a
# WROOM, no PSRAM. The radar node's compiled modules alone take ~88 KiB of
# heap when loaded from the filesystem, so on a WROOM the node runs from a
# firmware image that freezes them (firmware/manifest.py; docs/firmware.md,
# board table: tests/test_board_memory.py). NOT for the ToF node, which
# needs a WROVER (boards/esp32_wrover.py) with ESP32_GENERIC-SPIRAM.
# Filesystem: the 4 MB module's vfs partition (ports/esp32/partitions-4MiB.csv:
# 0x200000 bytes), littlefs, 4 KB erase blocks, wear-levelled.
ARCH = "xtensawin"
MICROPYTHON = "1.22-1.29"
FREE_HEAP = 110 * 1024
FS_BYTES = 2 * 1024 * 1024
FS_BLOCK = 4096
SENSORS = ("ld2450",)
FROZEN_REQUIRED = True       # the node's modules must be frozen into the image

SENSOR_UART = 2
SENSOR_TX = 4
SENSOR_RX = 5
SENSOR_RXBUF = 1024          # 3 s of LD2450 frames: the default 256 bytes overflows in one slow turn

I2C_ID = 0                   # hardware I2C 0 (machine.I2C(0, ...)), 1 MHz for the VL53L5CX
I2C_SDA = 21
I2C_SCL = 22
I2C_FREQ = 1000000
TOF_DATA_PATH = "/lib/qwiic_vl53l5cx/vl53l5cx_bin"

MODEM = "rak3172"            # or "wioe5"
MODEM_UART = 1
MODEM_TX = 25
MODEM_RX = 26

BATTERY_ADC_PIN = 35         # None: mains powered (battery_mv 0 in reports)
BATTERY_DIVIDER = 2          # volts at the pin x 2 = battery volts

WDT_TIMEOUT_MS = 15000       # longer than the slowest modem command (a join reply, 2 s) with margin
# Light sleep stops the UART clock on the ESP32 and the radar's frames would
# be lost; the node idles with time.sleep_ms between frames instead
# (about 40 mA; docs/firmware.md, energy).
LIGHT_SLEEP = False
