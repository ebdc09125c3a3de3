# LoRa time on air and the EU868 rules the node must keep.
#
# One module for the node's scheduler and the host's `vistelse airtime`
# tool, so both count airtime the same way. Formula: Semtech AN1200.13
# ("LoRa Modem Designer's Guide"), explicit header, CRC on. Integer
# microseconds throughout: single-precision floats on a microcontroller
# would lose milliseconds over a day's budget.

# LoRaWAN framing around the application payload: MHDR 1, DevAddr 4, FCtrl
# 1, FCnt 2, FPort 1, MIC 4. MAC commands in FOpts add up to 15 more.
LORAWAN_OVERHEAD = 13

# EU868 data rates: spreading factor at 125 kHz, and the largest
# application payload with no FOpts (LoRaWAN Regional Parameters RP002,
# no repeater). MAC commands in FOpts take from the same room.
EU868_DR = {
    0: (12, 51), 1: (11, 51), 2: (10, 51), 3: (9, 115),
    4: (8, 242), 5: (7, 242),
}

DUTY_CYCLE_PERMILLE = 10        # 1 % in the g1 sub-band (868.0-868.6 MHz)
TTN_FAIR_USE_MS_PER_DAY = 30000  # The Things Network: 30 s of uplink a day
DAY_MS = 86400000


def time_on_air_us(payload_len, sf, bw_hz=125000, cr=1, preamble=8, header=True, crc=True,
                   overhead=LORAWAN_OVERHEAD):
    """Time on air in microseconds of `payload_len` application bytes.

    cr is the coding rate 1..4 for 4/5..4/8. Low data-rate optimisation is
    on for SF11 and SF12 at 125 kHz, as LoRaWAN requires.
    """
    pl = payload_len + overhead
    de = 1 if (sf >= 11 and bw_hz == 125000) else 0
    ih = 0 if header else 1
    # symbol time in microseconds, kept exact: 2^sf / bw
    num = 8 * pl - 4 * sf + 28 + (16 if crc else 0) - 20 * ih
    den = 4 * (sf - 2 * de)
    n_payload = 8 + max(-(-num // den) * (cr + 4), 0)
    # (preamble + 4.25 + n_payload) symbols, each 2^sf / bw seconds
    return ((4 * (preamble + n_payload) + 17) * (1 << sf) * 1000000) // (4 * bw_hz)


def max_payload(dr):
    """Largest application payload (bytes) at an EU868 data rate."""
    if dr not in EU868_DR:
        raise ValueError("EU868 data rate must be 0..5")
    return EU868_DR[dr][1]


def airtime_us(payload_len, dr):
    return time_on_air_us(payload_len, EU868_DR[dr][0])


def off_time_ms(airtime_us_value, permille=DUTY_CYCLE_PERMILLE):
    """Silence after a transmission to keep the duty cycle (airtime × 99)."""
    return (airtime_us_value * (1000 - permille)) // (permille * 1000)


def uplinks_per_day(payload_len, dr, budget_ms=TTN_FAIR_USE_MS_PER_DAY):
    """How many uplinks of this size a day fit both the duty cycle and the budget."""
    t_us = airtime_us(payload_len, dr)
    by_budget = (budget_ms * 1000) // t_us
    by_duty = (DAY_MS * DUTY_CYCLE_PERMILLE // 1000 * 1000) // t_us
    return min(by_budget, by_duty)
