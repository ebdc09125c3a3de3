# ST NUCLEO-F446RE + Hi-Link LD2450 radar + Seeed Wio-E5 (LoRa-E5 module).
#
# Wiring (Arduino header names in brackets):
#   PA9  UART1 TX [D8]  -> Wio-E5 RX      PA10 UART1 RX [D2] <- Wio-E5 TX
#   PC10 UART3 TX       -> LD2450 RX      PC11 UART3 RX      <- LD2450 TX
#   PB8 SCL [D15], PB9 SDA [D14]          VL53L5CX instead of the radar (I2C 1)
#   PA0 [A0]                              battery through a 100k/100k divider
# UART2 (PA2/PA3) is the ST-LINK virtual COM port: the USB REPL.
ARCH = "armv7emsp"

SENSOR_UART = 3
SENSOR_TX = None             # fixed pins on STM32: the UART number chooses them
SENSOR_RX = None
SENSOR_RXBUF = 1024

I2C_ID = 1
I2C_SDA = None
I2C_SCL = None
TOF_DATA_PATH = "/flash/lib/qwiic_vl53l5cx/vl53l5cx_bin"

MODEM = "wioe5"
MODEM_UART = 1
MODEM_TX = None
MODEM_RX = None

BATTERY_ADC_PIN = "A0"
BATTERY_DIVIDER = 2

WDT_TIMEOUT_MS = 15000
# The STM32 port's machine.lightsleep() is STOP mode; UART reception stops
# with the clocks, so the node idles (WFI in time.sleep_ms) between frames.
LIGHT_SLEEP = False
