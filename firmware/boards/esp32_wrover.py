# ESP32-DevKitC with an ESP32-WROVER-E module (4 MB PSRAM) + VL53L5CX ToF
# (or LD2450 radar) + RAK3172 (RUI3). Flash MicroPython's ESP32_GENERIC-SPIRAM
# firmware. The pins are those of esp32_devkitc.py, clear of the PSRAM's
# GPIO16/17 and the flash's GPIO6-11 (Espressif, ESP32-WROVER-E datasheet).
#
# Wiring: as esp32_devkitc.py (modem GPIO25 TX / GPIO26 RX on UART1; LD2450
# GPIO4/GPIO5 on UART2; VL53L5CX on hardware I2C 0, GPIO21 SDA / GPIO22 SCL;
# battery divider on GPIO35).
#
# Memory (MicroPython 1.22-1.29, ports/esp32: MICROPY_GC_SPLIT_HEAP_AUTO, the
# heap grows into PSRAM through the IDF allocator): about 4 MB for Python.
# The ToF node's driver (~15 KB), its buffers, the 20 KB contiguous block of
# the firmware upload and its per-frame garbage need that room (docs/
# firmware.md, board table). Filesystem as the WROOM: 2 MB littlefs.
ARCH = "xtensawin"
MICROPYTHON = "1.22-1.29"
FREE_HEAP = 4 * 1024 * 1024 - 256 * 1024     # PSRAM less what the IDF keeps
FS_BYTES = 2 * 1024 * 1024
FS_BLOCK = 4096
SENSORS = ("ld2450", "vl53l5cx")
FROZEN_REQUIRED = False

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
