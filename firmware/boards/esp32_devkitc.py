# ESP32-DevKitC (ESP32-WROOM-32) + Hi-Link LD2450 radar + RAK3172 (RUI3).
#
# Wiring (docs/hil.md has the picture):
#   GPIO17 UART1 TX -> modem RX      GPIO16 UART1 RX <- modem TX
#   GPIO4  UART2 TX -> LD2450 RX     GPIO5  UART2 RX <- LD2450 TX
#   GPIO21 SDA, GPIO22 SCL           VL53L5CX instead of the radar (I2C 0)
#   GPIO35 (ADC1, input only)        battery through a 100k/100k divider
# The LD2450 needs 5 V (about 120 mA) from the board's 5V pin; its UART is
# 3.3 V. UART0 is the USB REPL and stays free for mpremote.
ARCH = "xtensawin"

SENSOR_UART = 2
SENSOR_TX = 4
SENSOR_RX = 5
SENSOR_RXBUF = 1024          # 3 s of LD2450 frames: the default 256 bytes overflows in one slow turn

I2C_ID = 0
I2C_SDA = 21
I2C_SCL = 22
TOF_DATA_PATH = "/lib/qwiic_vl53l5cx/vl53l5cx_bin"

MODEM = "rak3172"            # or "wioe5"
MODEM_UART = 1
MODEM_TX = 17
MODEM_RX = 16

BATTERY_ADC_PIN = 35         # None: mains powered (battery_mv 0 in reports)
BATTERY_DIVIDER = 2          # volts at the pin x 2 = battery volts

WDT_TIMEOUT_MS = 15000       # longer than the slowest modem command (a join reply, 2 s) with margin
# Light sleep stops the UART clock on the ESP32 and the radar's frames would
# be lost; the node idles with time.sleep_ms between frames instead
# (about 40 mA; docs/firmware.md, energy).
LIGHT_SLEEP = False
