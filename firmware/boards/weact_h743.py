# WeAct Studio MiniSTM32H743 (STM32H743VIT6) + LD2450 radar or VL53L5CX ToF
# + Seeed Wio-E5 or RAK3172. MicroPython board WEACTSTUDIO_MINI_STM32H743
# (in MicroPython since 1.27; checked against 1.27-1.29 sources:
# ports/stm32/boards/WEACTSTUDIO_MINI_STM32H743/).
#
# Why this STM32: its filesystem is on an external 8 MB SPI flash
# (mpconfigboard.h: MICROPY_HW_SPIFLASH_SIZE_BYTES 8 MB, internal flash
# storage disabled) with littlefs (mpconfigboard.mk: MICROPY_VFS_LFS2 = 1;
# ports/stm32/main.c mounts a littlefs it finds): 4 KB erase blocks,
# wear-levelled, 100k cycles per block. Its GC heap is the 512 KB AXI SRAM
# less static data and the 16 KB stack (weact_stm32h743.ld: _heap_start =
# _ebss, _heap_end = _sstack), about 450 KB. Format the flash once as
# littlefs (docs/firmware.md, "STM32: first start").
#
# Pins are those MicroPython's board file fixes (machine.UART(n) takes no pins
# on the STM32 port):
#   UART1 PA9 TX -> modem RX         PA10 RX <- modem TX
#   UART4 PC11 TX -> LD2450 RX       PC10 RX <- LD2450 TX
#   I2C1 PB8 SCL, PB9 SDA            VL53L5CX instead of the radar (hardware I2C 1, 1 MHz)
#   PA0                              battery through a 100k/100k divider
# USB (PA11/PA12, USB-C) is the REPL. SPI1 (PB3/PB4/PD6/PD7) is the flash's.
ARCH = "armv7emdp"           # Cortex-M7 with double-precision FPU
MICROPYTHON = "1.27-1.29"
FREE_HEAP = 450 * 1024
FS_BYTES = 8 * 1024 * 1024
FS_BLOCK = 4096
SENSORS = ("ld2450", "vl53l5cx")
FROZEN_REQUIRED = False

SENSOR_UART = 4
SENSOR_TX = None             # fixed pins on STM32: the UART number chooses them
SENSOR_RX = None
SENSOR_RXBUF = 1024

I2C_ID = 1
I2C_SDA = None
I2C_SCL = None
I2C_FREQ = 1000000
TOF_DATA_PATH = "/flash/lib/qwiic_vl53l5cx/vl53l5cx_bin"

MODEM = "wioe5"              # or "rak3172"
MODEM_UART = 1
MODEM_TX = None
MODEM_RX = None

BATTERY_ADC_PIN = "A0"
BATTERY_DIVIDER = 2

WDT_TIMEOUT_MS = 15000
# The STM32 port's machine.lightsleep() is STOP mode; UART reception stops
# with the clocks, so the node idles (WFI in time.sleep_ms) between frames.
LIGHT_SLEEP = False
