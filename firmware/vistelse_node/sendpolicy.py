# When the node may transmit, and how much: EU868 duty cycle and a daily
# airtime budget.
#
# Two limits, both counted with the shared airtime module:
#
# - duty cycle: after an uplink of airtime T the sub-band is silent for
#   99 T (1 % in g1, where the default channels are). The modem enforces it
#   too; keeping our own account avoids asking it in vain.
# - daily budget (default 30 s, The Things Network's fair use): a token
#   bucket. Tokens accrue at (budget - burst) per day and the bucket holds
#   at most `burst`, so no 24-hour window can ever use more than the budget
#   (at most burst at its start plus what accrues during it).
#
# Nothing is dropped: when the bucket is short, finished intervals wait in
# the persistent queue and the next uplink carries more of them (batching),
# which costs less airtime per interval because the LoRaWAN header and
# preamble are paid once. At a slow data rate the same budget therefore
# buys fewer, fuller uplinks.
from vistelse_node import airtime
from vistelse_node.clock import ticks_add, ticks_diff

BURST_FRACTION = 8            # burst = budget / 8: 3.75 s, one SF12 uplink of 51 bytes is 2.5 s


class SendPolicy:
    def __init__(self, clock, budget_ms=airtime.TTN_FAIR_USE_MS_PER_DAY, duty_permille=airtime.DUTY_CYCLE_PERMILLE):
        self.clock = clock
        self.budget_ms = budget_ms
        self.burst_us = budget_ms * 1000 // BURST_FRACTION
        self.rate_us_per_s = (budget_ms * 1000 - self.burst_us) // 86400   # tokens per second
        self.duty_permille = duty_permille
        self.tokens_us = self.burst_us
        self.last = clock.ticks_ms()
        self.quiet_until = None        # ticks: the duty cycle's silence ends
        self.used_us = 0               # airtime spent since start (for status and tests)

    def _refill(self):
        now = self.clock.ticks_ms()
        dt = ticks_diff(now, self.last)
        if dt >= 1000:
            s = dt // 1000
            self.tokens_us = min(self.burst_us, self.tokens_us + s * self.rate_us_per_s)
            self.last = ticks_add(self.last, s * 1000)

    def wait_ms(self, payload_len, dr):
        """Milliseconds until an uplink of payload_len bytes at dr may go (0: now)."""
        self._refill()
        wait = 0
        if self.quiet_until is not None:
            d = ticks_diff(self.quiet_until, self.clock.ticks_ms())
            if d > 0:
                wait = d
            else:
                self.quiet_until = None
        cost = airtime.airtime_us(payload_len, dr)
        short = cost - self.tokens_us
        if short > 0:
            if cost > self.burst_us:
                return -1              # never fits: send fewer bytes
            by_budget = (short + self.rate_us_per_s - 1) // self.rate_us_per_s * 1000
            if by_budget > wait:
                wait = by_budget
        return wait

    def spent(self, payload_len, dr):
        """An uplink went on air."""
        self._refill()
        cost = airtime.airtime_us(payload_len, dr)
        self.tokens_us -= cost
        self.used_us += cost
        self.quiet_until = ticks_add(self.clock.ticks_ms(), airtime.off_time_ms(cost, self.duty_permille))

    def hold(self, ms):
        """The modem asked for silence (its own duty-cycle account)."""
        until = ticks_add(self.clock.ticks_ms(), ms)
        if self.quiet_until is None or ticks_diff(until, self.quiet_until) > 0:
            self.quiet_until = until
