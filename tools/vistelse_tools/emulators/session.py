# A simulated LoRaWAN class A session, as a modem sees it (EU868).
#
# Runs under CPython and MicroPython (the end-to-end node test). Time is
# whatever `now_ms()` returns: plain, non-wrapping milliseconds.
try:
    from vistelse_node import airtime
except ImportError:       # pragma: no cover - firmware not on the path
    airtime = None

FOPTS_MAX = 15                    # LoRaWAN 1.0.x: FOpts holds at most 15 bytes
JOIN_REQUEST_BYTES = 23           # PHYPayload of a join request
RX1_DELAY_MS = 1000
RX2_DELAY_MS = 2000
JOIN_ACCEPT_DELAY1_MS = 5000
JOIN_ACCEPT_DELAY2_MS = 6000
# EU868 default channels 868.1, 868.3 and 868.5 MHz all lie in sub-band g1
# (868.0-868.6 MHz, 1 % duty cycle); the band table allows others.
BANDS = {"g1": 10, "g2": 10, "g3": 100}     # permille
CHANNELS = ((868100000, "g1"), (868300000, "g1"), (868500000, "g1"))

# outcomes of an uplink request
OK = "ok"
NOT_JOINED = "not_joined"
LENGTH = "length"
DUTY = "duty"
BUSY = "busy"


class Random:
    """A small deterministic generator (xorshift32), the same in both runtimes."""

    def __init__(self, seed=1):
        self.state = (seed * 2654435761) & 0xFFFFFFFF or 1

    def next(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def chance(self, rate):
        return rate > 0 and (self.next() % 1000000) < int(rate * 1000000)


class Session:
    """What the modem and the network agree on.

    on_uplink(dict) gets every uplink that went on air: dev_eui (hex),
    fport, data (bytes), fcnt, dr, confirmed, airtime_us. downlinks(dev_eui)
    -> (fport, bytes[, confirmed]) or None is asked after each uplink, the
    way a class A device receives (e.g. NetworkServer.next_downlink);
    queue_downlink() adds to the session's own queue.

    Failures, each a probability per attempt: join_fail_rate (no join
    accept), busy_rate (the modem answers busy), ack_fail_rate (a confirmed
    uplink gets no ack), mac_rate (the network's MAC commands take FOpts
    room in the next uplink, so a payload that fitted no longer does),
    tx_fail_rate (the radio's TX times out: nothing goes on air).
    join_failures fails the first N joins.

    The network loses uplinks the modem sent: loss_rate (collisions, the
    edge of coverage) and outages, a list of (from_ms, until_ms) during
    which the network server or the gateway is away. A lost uplink went on
    air, so the modem still reports success (for an unconfirmed uplink
    RUI3 prints +EVT:TX_DONE whatever became of it, lora/service_lora.c
    McpsConfirm; the Wio-E5 prints "+MSG: Done"); nobody heard it, so no
    downlink comes back in its receive windows (class A: LoRaWAN 1.0.4
    section 3.3, a downlink only in RX1/RX2 after an uplink).
    """

    def __init__(self, now_ms, dev_eui="0000000000000000", dr=5, adr=True, on_uplink=None, on_join=None,
                 downlinks=None, join_failures=0, join_fail_rate=0.0, busy_rate=0.0, ack_fail_rate=0.0,
                 mac_rate=0.0, tx_fail_rate=0.0, seed=1, loss_rate=0.0, outages=()):
        self.now_ms = now_ms
        self.dev_eui = dev_eui.lower()
        self.dr = dr
        self.adr = adr
        self.on_uplink = on_uplink
        self.on_join = on_join
        self.downlink_source = downlinks
        self.queued = []
        self.join_failures = join_failures
        self.join_fail_rate = join_fail_rate
        self.busy_rate = busy_rate
        self.ack_fail_rate = ack_fail_rate
        self.mac_rate = mac_rate
        self.tx_fail_rate = tx_fail_rate
        self.loss_rate = loss_rate
        self.outages = list(outages)
        self.rng = Random(seed)
        self.loss_rng = Random(seed + 7919)   # its own stream: loss does not shift the other draws
        self.lost = []                # uplinks that went on air and never arrived
        self.joined = False
        self.dev_addr = None
        self.joins = 0
        self.fcnt_up = 0
        self.fcnt_down = 0
        self.fopts = 0                # MAC command bytes waiting to ride in FOpts
        self.mac_only_uplinks = 0
        self.band_free_at = {}        # band -> ms
        self.channel = 0
        self.uplinks = []             # everything that went on air, for tests
        self.airtime_us_total = 0

    # --- radio rules ----------------------------------------------------------

    def max_payload(self, dr=None):
        return airtime.max_payload(self.dr if dr is None else dr)

    def _band(self):
        return CHANNELS[self.channel % len(CHANNELS)][1]

    def wait_ms(self):
        """How long until the next channel's sub-band may transmit again."""
        free = self.band_free_at.get(self._band(), 0)
        return max(0, free - self.now_ms())

    def _transmit(self, phy_payload_len, overhead):
        t_us = airtime.time_on_air_us(phy_payload_len, airtime.EU868_DR[self.dr][0], overhead=overhead)
        band = self._band()
        permille = BANDS[band]
        self.band_free_at[band] = self.now_ms() + (t_us * 1000 // permille) // 1000
        self.channel += 1
        self.airtime_us_total += t_us
        return t_us

    # --- join -----------------------------------------------------------------

    def join(self):
        """One join attempt: (accepted, ms until the modem knows)."""
        t_us = self._transmit(JOIN_REQUEST_BYTES, 0)
        self.joins += 1
        fail = self.joins <= self.join_failures or self.rng.chance(self.join_fail_rate)
        if fail:
            return False, t_us // 1000 + JOIN_ACCEPT_DELAY2_MS + 500
        self.joined = True
        self.dev_addr = "26%06x" % (self.rng.next() & 0xFFFFFF)
        self.fcnt_up = 0
        self.fcnt_down = 0
        self.fopts = 0
        if self.on_join:
            self.on_join(self.dev_eui)
        return True, t_us // 1000 + JOIN_ACCEPT_DELAY1_MS + 100

    # --- uplink ---------------------------------------------------------------

    def check(self, length):
        """Why an uplink of `length` bytes could not go now, or OK."""
        if not self.joined:
            return NOT_JOINED
        if self.rng.chance(self.busy_rate):
            return BUSY
        if self.wait_ms() > 0:
            return DUTY
        if length > self.app_room():
            return LENGTH
        return OK

    def app_room(self):
        """LoRaMac-node's LoRaMacQueryTxPossible: MaxPossibleApplicationDataSize
        is 0 when the pending MAC commands do not fit FOpts (15 bytes) or the
        payload; they must then go alone in an uplink of their own."""
        if self.fopts > FOPTS_MAX or self.fopts > self.max_payload():
            return 0
        return self.max_payload() - self.fopts

    def flush_mac(self):
        """An uplink without application payload (RUI3 sends one by itself
        when a payload does not fit; the Wio-E5 on an empty AT+MSG): the MAC
        commands go as FOpts, or as fPort 0 when too long for FOpts.
        Returns ms until its receive windows are over."""
        t_us = self._transmit(self.fopts, 13)
        self.fopts = 0
        self.fcnt_up += 1
        self.mac_only_uplinks += 1
        return t_us // 1000 + RX2_DELAY_MS + 200

    def tx_fails(self):
        """A radio TX timeout this time (tx_fail_rate): nothing goes on air."""
        return self.rng.chance(self.tx_fail_rate)

    def heard(self):
        """Whether the network hears the uplink going on air now."""
        now = self.now_ms()
        for start, end in self.outages:
            if start <= now < end:
                return False
        return not self.loss_rng.chance(self.loss_rate)

    def uplink(self, fport, data, confirmed=False):
        """Put an uplink on air (check() said OK). Returns
        (ms until the RX windows are over, heard, acked); when heard, the
        dialect asks receive() for a downlink as its RX1 window opens."""
        t_us = self._transmit(len(data) + self.fopts, 13)
        self.fopts = 0
        up = {"dev_eui": self.dev_eui, "fport": fport, "data": bytes(data), "fcnt": self.fcnt_up,
              "dr": self.dr, "confirmed": confirmed, "airtime_us": t_us, "at_ms": self.now_ms()}
        self.fcnt_up += 1
        self.uplinks.append(up)
        if not self.heard():
            self.lost.append(up)
            if self.rng.chance(self.mac_rate):
                self.fopts = 3 + self.rng.next() % 8
            return t_us // 1000 + RX2_DELAY_MS + 200, False, not confirmed
        if self.on_uplink:
            self.on_uplink(up)
        acked = not confirmed or not self.rng.chance(self.ack_fail_rate)
        if self.rng.chance(self.mac_rate):
            self.fopts = 3 + self.rng.next() % 8      # e.g. LinkADRAns, DevStatusAns, ...
        return t_us // 1000 + RX2_DELAY_MS + 200, True, acked

    def receive(self):
        """The downlink for the receive window now opening after a heard uplink,
        or None. The network server reads the device's queue between handing the
        uplink to the application and RX1, so a downlink the application queued
        meanwhile goes in this window (ChirpStack v4 network.get_downlink_data_delay,
        chirpstack/src/cmd/configfile.rs: "an end-application has more time to
        schedule a downlink queue item which can be processed within the same
        uplink / downlink transaction")."""
        down = None
        if self.queued:
            down = self.queued.pop(0)
        elif self.downlink_source is not None:
            down = self.downlink_source(self.dev_eui)
        if down is not None:
            down = (down[0], bytes(down[1]))
            self.fcnt_down += 1
        return down

    def queue_downlink(self, fport, data):
        self.queued.append((fport, bytes(data)))

    def set_dr(self, dr):
        """The network (ADR) or the device moves to another data rate."""
        if dr not in airtime.EU868_DR:
            raise ValueError("EU868 DR 0..5")
        self.dr = dr
