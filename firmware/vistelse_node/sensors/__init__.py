# Sensor drivers and the one place that builds them from a board's pins.
#
# Every sensor object has the same small interface for the node: setup(),
# read_frame() (non-blocking: a frame or None), reinit(), set_mode(mode).
from vistelse_node.clock import SysClock


def open_sensor(sensor="ld2450", uart=2, tx=None, rx=None, i2c=0, sda=None, scl=None, resolution=8, rate_hz=None,
                data_path=None, clock=None, rotate=0, mirror=False, feed=None, freq=1000000):
    """Build and set up the sensor from the board's pins (machine). The ToF
    sensor's orientation (rotate, mirror) comes from the node file's mount;
    feed is the watchdog's, for its set-up's long steps."""
    import machine
    clock = clock or SysClock()
    if sensor == "ld2450":
        from vistelse_node.sensors.ld2450 import LD2450, BAUDRATE
        kw = {"rxbuf": 1024}
        if tx is not None:
            kw["tx"] = tx
        if rx is not None:
            kw["rx"] = rx
        dev = LD2450(machine.UART(uart, BAUDRATE, **kw), clock)
    elif sensor == "vl53l5cx":
        import qwiic_vl53l5cx
        from vistelse_node.sensors.vl53l5cx import VL53L5CX, board_i2c
        driver_bus, bus = board_i2c(i2c, sda=sda, scl=scl, freq=freq)     # hardware I2C by the board's id
        kw = {"i2c_driver": driver_bus}
        if data_path:
            kw["dataPath"] = data_path
        dev = VL53L5CX(qwiic_vl53l5cx.QwiicVL53L5CX(**kw), clock, resolution=resolution,
                       rate_hz=rate_hz or (15 if resolution == 8 else 30), rotate=rotate, mirror=mirror, bus=bus,
                       feed=feed)
    else:
        raise ValueError("sensor must be ld2450 or vl53l5cx")
    dev.setup()
    return dev
