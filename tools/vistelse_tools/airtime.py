"""`vistelse airtime`: radio time, daily budget, batching plan, battery life.

    vistelse airtime                         1 zone, 1 line, 300 s interval
    vistelse airtime --zones 2 --lines 1 --interval 600 --budget 30
    vistelse airtime --board weact_h743 --sensor vl53l5cx --battery-ah 19
    vistelse airtime --plot airtime.png

Time on air comes from the node's own module (firmware/vistelse_node/airtime.py,
Semtech AN1200.13), message sizes from the payload contract's encoder, so
what this prints is what the node does. The current figures are typical
datasheet values (the table POWER below, with sources): measure your own
node for a real estimate.
"""
import argparse
import sys

import vistelse_codec as vc
from vistelse_node import airtime

from . import deploy

DEV_EUI = bytes(8)
KEY = bytes(32)

# Typical currents in mA (sources in docs/firmware.md and below). The
# sensors run continuously while counting; they dominate everything else.
POWER = {
    "sensor": {
        # Hi-Link HLK-LD2450 user manual: 5 V supply, average current ~120 mA.
        "ld2450": {"active_ma": 120.0, "volts": 5.0},
        # ST VL53L5CX datasheet (DS13754): ~300 mW while ranging continuously.
        "vl53l5cx": {"active_ma": 90.0, "volts": 3.3},
    },
    # Per microcontroller; the boards are vistelse deploy's (deploy.BOARDS,
    # whose "mcu" names the entry), each with the modem its board file wires.
    "mcu": {
        # ESP32-WROOM-32 datasheet: ~30-50 mA with radio off at 80-160 MHz,
        # ~0.8 mA in light sleep; the node is active ~20 % of each frame.
        "esp32": {"active_ma": 40.0, "sleep_ma": 0.8, "active_share": 0.2},
        # STM32F446 datasheet: ~20 mA at 84 MHz, ~0.3 mA in stop mode
        # (the NUCLEO's ST-LINK adds more; cut it off in the field).
        "stm32f446": {"active_ma": 20.0, "sleep_ma": 0.3, "active_share": 0.2},
        # STM32H743 datasheet (DS12110, typical consumption in Run and
        # Sleep mode): ~100 mA running at 400 MHz, ~30 mA in Sleep (WFI,
        # peripherals clocked), how the node idles between frames on this
        # port (boards/weact_h743.py, LIGHT_SLEEP). An order of magnitude:
        # measure your board.
        "stm32h743": {"active_ma": 100.0, "sleep_ma": 30.0, "active_share": 0.2},
    },
    "modem": {
        # STM32WLE5 (RAK3172 and Wio-E5 both use it): TX +14 dBm ~45 mA
        # (high-power PA), RX ~5 mA, sleep ~2 uA.
        "rak3172": {"tx_ma": 45.0, "rx_ma": 5.0, "sleep_ma": 0.002},
        "wioe5": {"tx_ma": 45.0, "rx_ma": 5.0, "sleep_ma": 0.002},
    },
}
RX_WINDOWS_S = 2.0          # RX1 + RX2 listening after each class A uplink, at most
REGULATOR_EFFICIENCY = 0.85


def report_size(zones, lines, intervals, heights=False):
    """Bytes of a report frame with typical busy-site values."""
    iv = {"zones": [{"visits": 40, "person_s": 2000, "max_occupancy": 6,
                     "dwell_hist": {"counts": [20, 10, 5, 3, 1, 1, 0]}} for _ in range(zones)],
          "lines": [{"in": 20, "out": 18, "total_in": 1234, "total_out": 1200} for _ in range(lines)]}
    if heights:
        iv["height_classes"] = {"counts": [4, 30]}
    report = {"seq": 1000, "interval_s": 300, "age_s": 2,
              "status": {"battery_mv": 3300, "health": [], "config_version": 3, "reset_cause": None},
              "intervals": [iv] * intervals}
    try:
        return len(vc.encode_uplink(report, dev_eui=DEV_EUI, key=KEY))
    except vc.PayloadError:
        return None


def max_batch(zones, lines, dr, heights=False):
    """Most intervals one uplink can carry at this data rate (0 if not even one)."""
    n = 0
    while n < 64:
        size = report_size(zones, lines, n + 1, heights)
        if size is None or size > airtime.max_payload(dr):
            break
        n += 1
    return n


def plan(zones, lines, interval_s, dr, budget_ms, heights=False):
    """Batching plan at one data rate: how many intervals per uplink keep the budget."""
    per_day = 86400 // interval_s
    most = max_batch(zones, lines, dr, heights)
    for batch in range(1, most + 1):
        size = report_size(zones, lines, batch, heights)
        t_us = airtime.airtime_us(size, dr)
        uplinks = -(-per_day // batch)
        day_ms = uplinks * t_us // 1000
        # the duty cycle: each uplink must wait airtime x 99 before the next
        spacing_ok = airtime.off_time_ms(t_us) + t_us // 1000 <= batch * interval_s * 1000
        if day_ms <= budget_ms and spacing_ok:
            return {"batch": batch, "bytes": size, "airtime_ms": t_us / 1000.0, "uplinks": uplinks,
                    "day_ms": day_ms}
    # Does not fit: the longest interval at which the largest batch would.
    if most == 0:
        return {"batch": 0}
    size = report_size(zones, lines, most, heights)
    t_us = airtime.airtime_us(size, dr)
    uplinks_allowed = max(1, (budget_ms * 1000) // t_us)
    by_budget = -(-86400 // (uplinks_allowed * most))
    by_duty = -(-(airtime.off_time_ms(t_us) + t_us // 1000) // (1000 * most))
    return {"batch": None, "largest": most, "bytes": size, "min_interval_s": max(by_budget, by_duty)}


def battery(board, sensor, uplinks_per_day, airtime_ms_per_uplink, battery_ah):
    """(average mA at the battery, days) for a board, sensor and radio use."""
    b, s = POWER["mcu"][deploy.BOARDS[board]["mcu"]], POWER["sensor"][sensor]
    m = POWER["modem"][deploy.board_facts(board)["MODEM"]]
    battery_v = 3.6
    # sensor power is drawn at its own voltage through a regulator
    sensor_ma = s["active_ma"] * s["volts"] / battery_v / REGULATOR_EFFICIENCY
    mcu_ma = b["active_share"] * b["active_ma"] + (1 - b["active_share"]) * b["sleep_ma"]
    tx_s = uplinks_per_day * airtime_ms_per_uplink / 1000.0
    rx_s = uplinks_per_day * RX_WINDOWS_S
    modem_ma = (tx_s * m["tx_ma"] + rx_s * m["rx_ma"] + (86400 - tx_s - rx_s) * m["sleep_ma"]) / 86400
    total = sensor_ma + mcu_ma + modem_ma
    return {"sensor_ma": sensor_ma, "mcu_ma": mcu_ma, "modem_ma": modem_ma, "total_ma": total,
            "days": battery_ah * 1000 / total / 24}


def main(argv=None):
    p = argparse.ArgumentParser(prog="vistelse airtime", description=__doc__.splitlines()[0])
    p.add_argument("--zones", type=int, default=1)
    p.add_argument("--lines", type=int, default=1)
    p.add_argument("--interval", type=int, default=300, help="reporting interval in SECONDS (default 300)")
    p.add_argument("--budget", type=float, default=30, help="daily uplink airtime budget in seconds (TTN: 30)")
    p.add_argument("--board", choices=sorted(deploy.BOARDS), default="esp32_devkitc")
    p.add_argument("--sensor", choices=sorted(POWER["sensor"]), default="ld2450")
    p.add_argument("--battery-ah", type=float, default=19.0, help="battery capacity (default: one 3.6 V D cell)")
    p.add_argument("--plot", help="also write a PNG plot to this file")
    args = p.parse_args(argv)
    if not 60 <= args.interval <= 86400:
        p.error("--interval is in seconds, 60 to 86400")
    heights = args.sensor == "vl53l5cx"
    budget_ms = int(args.budget * 1000)
    one = report_size(args.zones, args.lines, 1, heights)
    if one is None:
        p.error("a report with %d zones and %d lines does not fit any LoRaWAN payload" % (args.zones, args.lines))
    print("Report: %d zone(s), %d line(s)%s, one interval: %d bytes (tag included)" % (
        args.zones, args.lines, ", height classes" if heights else "", one))
    print("Interval %d s = %d reports a day; budget %.0f s of uplink a day; EU868 1 %% duty cycle\n" % (
        args.interval, 86400 // args.interval, args.budget))
    print("%-4s %-5s %8s %11s %9s  %s" % ("DR", "SF", "max B", "airtime", "per day", "batching plan"))
    rows = []
    for dr in range(6):
        sf = airtime.EU868_DR[dr][0]
        t_ms = airtime.airtime_us(one, dr) / 1000.0 if one <= airtime.max_payload(dr) else None
        per_day = airtime.uplinks_per_day(one, dr, budget_ms) if t_ms else 0
        pl = plan(args.zones, args.lines, args.interval, dr, budget_ms, heights)
        if pl.get("batch"):
            text = "%d interval(s) per uplink, %d B, %d uplinks, %.1f s a day" % (
                pl["batch"], pl["bytes"], pl["uplinks"], pl["day_ms"] / 1000.0)
        elif pl.get("batch") == 0:
            text = "one interval (%d B) does not fit %d B: use DR%d or better" % (
                one, airtime.max_payload(dr), min(d for d in range(6) if airtime.max_payload(d) >= one))
        else:
            text = "does not fit: needs an interval of %d s or more (%d per uplink), or merging" % (
                pl["min_interval_s"], pl["largest"])
        print("%-4d SF%-3d %8d %9s %9s  %s" % (dr, sf, airtime.max_payload(dr),
                                              "%.0f ms" % t_ms if t_ms else "—", per_day, text))
        rows.append((dr, pl))
    print("\nBattery, %s + %s, %.0f Ah at 3.6 V (typical datasheet currents; measure yours):" % (
        args.board, args.sensor, args.battery_ah))
    for dr, pl in rows:
        if pl.get("batch"):
            est = battery(args.board, args.sensor, pl["uplinks"], pl["airtime_ms"], args.battery_ah)
            print("  DR%d: %.1f mA average (sensor %.1f, MCU %.1f, radio %.3f) -> %.0f days" % (
                dr, est["total_ma"], est["sensor_ma"], est["mcu_ma"], est["modem_ma"], est["days"]))
    print("The sensor draws almost all of it: plan mains, street-light or solar power for counting nodes.")
    if args.plot:
        write_plot(args.plot, args.zones, args.lines, heights)
        print("plot: %s" % args.plot)
    return 0


def write_plot(path, zones, lines, heights):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for dr in range(6):
        most = max_batch(zones, lines, dr, heights)
        xs = list(range(1, most + 1))
        ys = [airtime.airtime_us(report_size(zones, lines, n, heights), dr) / 1000.0 for n in xs]
        ax.plot(xs, ys, marker="o", label="DR%d (SF%d)" % (dr, airtime.EU868_DR[dr][0]))
    ax.set_yscale("log")
    ax.set_xlabel("intervals per uplink")
    ax.set_ylabel("time on air per uplink (ms)")
    ax.set_title("Vistelse report, %d zone(s), %d line(s): airtime by batch size" % (zones, lines))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
