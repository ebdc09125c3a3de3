# ST NUCLEO-F446RE: a bench board only. The node does NOT fit it:
#
# - its filesystem is the internal flash (ports/stm32/flashbdev.c: 64 KB of
#   16 KB sectors, FAT, ~48 KB usable after the root directory), less than
#   the compiled firmware (~61 KB in clusters); `vistelse deploy` refuses it;
# - every file close erases a 16 KB sector (flashbdev.c writes back its
#   cache sector by sector), 10k cycles each: a queue append per interval
#   wears it out in weeks (docs/firmware.md, flash endurance);
# - its GC heap is about 80 KB.
# Use boards/weact_h743.py for an STM32 node.
#
# Pins as MicroPython's board file fixes them (ports/stm32/boards/
# NUCLEO_F446RE/mpconfigboard.h; UART1 and UART3 exist since 1.22):
#   UART1 PB6 TX [D10] -> modem RX    PB7 RX <- modem TX
#   UART3 PB10 TX [D6] -> LD2450 RX   PC5 RX <- LD2450 TX
#   I2C1 PB8 SCL [D15], PB9 SDA [D14]
# UART2 (PA2/PA3) is the ST-LINK virtual COM port: the USB REPL.
ARCH = "armv7emsp"
MICROPYTHON = "1.22-1.29"
FREE_HEAP = 80 * 1024
FS_BYTES = 48 * 1024
FS_BLOCK = 16384             # the erase unit the FAT's writes land on
SENSORS = ()
FROZEN_REQUIRED = False

SENSOR_UART = 3
SENSOR_TX = None
SENSOR_RX = None
SENSOR_RXBUF = 1024

I2C_ID = 1
I2C_SDA = None
I2C_SCL = None
I2C_FREQ = 400000
TOF_DATA_PATH = "/flash/lib/qwiic_vl53l5cx/vl53l5cx_bin"

MODEM = "wioe5"
MODEM_UART = 1
MODEM_TX = None
MODEM_RX = None

BATTERY_ADC_PIN = "A0"
BATTERY_DIVIDER = 2

WDT_TIMEOUT_MS = 15000
LIGHT_SLEEP = False
