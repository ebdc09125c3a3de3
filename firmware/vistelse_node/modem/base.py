# One interface for LoRaWAN AT-command modems (RAK3172 RUI3, Seeed Wio-E5).
#
# The modem is a cooperative state machine: the main loop calls poll()
# every turn and takes events; nothing here blocks longer than one short
# command's reply (milliseconds at the modem's baud rate). A join or an
# uplink is started and its outcome arrives later as an event:
#
#     ("joined",)  ("join_failed", detail)
#     ("sent", acked)          acked: True   the network acknowledged a confirmed uplink
#                                     False  a confirmed uplink got no ack
#                                     None   an unconfirmed uplink ended; whether it
#                                            went on air is not proven (RUI3 prints
#                                            +EVT:TX_DONE whatever the MAC's status)
#     ("send_failed", cause)   e.g. TIMEOUT: no end of the receive windows seen
#     ("downlink", port, data)
#
# Errors that the modem reports at once raise ModemError with a cause:
# BUSY, NOT_JOINED, LENGTH (the payload plus pending MAC commands in FOpts
# does not fit the data rate: send fewer bytes), DUTY_CYCLE (with wait_ms
# when the modem says how long), TIMEOUT, ERROR. on_air is True when the
# refusal still put an uplink on air (RUI3 flushes MAC commands in an empty
# uplink before refusing a payload that does not fit): airtime spent.
# Replies are parsed
# loosely (case, spacing, extra lines, older firmware formats), because
# firmware versions differ.
#
# Joining: join() makes one OTAA attempt; maintain() retries with
# exponential backoff (join_backoff_ms doubling up to join_backoff_max_ms,
# with jitter) while the node is not joined. A join the modem refuses for
# its band's duty-cycle pause (with the wait) is retried when the band is
# free, without backoff: no join request went on air.
#
# Evidence: only a confirmed uplink's ack proves an uplink arrived (see
# ("sent", acked) above); the node sends its reports confirmed.
import binascii

from vistelse_node import airtime
from vistelse_node.clock import ticks_add, ticks_diff

BUSY = "busy"
NOT_JOINED = "not_joined"
LENGTH = "length"
DUTY_CYCLE = "duty_cycle"
TIMEOUT = "timeout"
NO_ACK = "no_ack"
ERROR = "error"

IDLE = 0
JOINING = 1
SENDING = 2
ASLEEP = 3


class ModemError(Exception):
    def __init__(self, cause, detail="", wait_ms=0, on_air=False):
        super().__init__(cause, detail)
        self.cause = cause
        self.detail = detail
        self.wait_ms = wait_ms
        self.on_air = on_air


def first_int(text, start=0):
    """The first (possibly negative) integer in text at or after start, or None."""
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if "0" <= c <= "9" or (c == "-" and i + 1 < n and "0" <= text[i + 1] <= "9"):
            j = i + 1
            while j < n and "0" <= text[j] <= "9":
                j += 1
            return int(text[i:j])
        i += 1
    return None


def is_hex(text):
    if not text or len(text) % 2:
        return False
    for c in text:
        if not ("0" <= c <= "9" or "a" <= c <= "f" or "A" <= c <= "F"):
            return False
    return True


def to_hex(data):
    return binascii.hexlify(data).decode().upper()


def from_hex(text):
    return binascii.unhexlify(text)


class Modem:
    name = "modem"
    baudrate = 115200
    reply_timeout_ms = 2000
    join_timeout_ms = 20000
    send_timeout_ms = 30000

    def __init__(self, uart, clock, join_backoff_ms=15000, join_backoff_max_ms=3600000, seed=0):
        self.uart = uart
        self.clock = clock
        self._rx = bytearray(128)
        self._line = bytearray()
        self._replies = None          # list while a command waits for its reply
        self.events = []
        self.state = IDLE
        self.joined = False
        self.confirmed = None
        self.dr = None
        self.deadline = None
        self.join_backoff_ms = join_backoff_ms
        self.join_backoff_min_ms = join_backoff_ms
        self.join_backoff_max_ms = join_backoff_max_ms
        self.next_join_at = None      # ticks; None: join at once
        self.join_attempts = 0
        self.failures = 0             # join and send failures since cleared (health)
        self._seed = (seed or 1) & 0xFFFF
        self.trace = None             # callable(direction, line) for debugging

    # --- line layer -----------------------------------------------------------

    def _pump(self):
        uart = self.uart
        while True:
            if hasattr(uart, "any") and not uart.any():
                return
            n = uart.readinto(self._rx)
            if not n:
                return
            for i in range(n):
                b = self._rx[i]
                if b == 10 or b == 13:
                    if self._line:
                        try:
                            text = bytes(self._line).decode().strip()
                        except UnicodeError:
                            text = ""
                        self._line = bytearray()
                        if text:
                            self._dispatch(text)
                elif b != 0 and b != 0xFF:
                    self._line.append(b)

    def _dispatch(self, line):
        if self.trace:
            self.trace("<", line)
        if self._event(line):
            return
        if self._replies is not None:
            self._replies.append(line)

    def _write(self, text):
        if self.trace:
            self.trace(">", text)
        self.uart.write(text.encode() + b"\r\n")

    def command(self, text, done, timeout_ms=None):
        """Send one command; return its reply lines once done(line) is true
        for one of them. Raises ModemError(TIMEOUT)."""
        self._pump()                  # lines that came unasked are not this command's reply
        self._replies = []
        self._write(text)
        start = self.clock.ticks_ms()
        limit = self.reply_timeout_ms if timeout_ms is None else timeout_ms
        try:
            while True:
                self._pump()
                for line in self._replies:
                    if done(line):
                        return self._replies
                if ticks_diff(self.clock.ticks_ms(), start) >= limit:
                    raise ModemError(TIMEOUT, "no reply to " + text.split("=")[0])
                self.clock.sleep_ms(2)
        finally:
            self._replies = None

    def _emit(self, *event):
        self.events.append(event)

    # --- the interface --------------------------------------------------------

    def poll(self):
        """Read what the modem said; turn deadlines into failure events."""
        self._pump()
        if self.deadline is not None and ticks_diff(self.clock.ticks_ms(), self.deadline) >= 0:
            self.deadline = None
            if self.state == JOINING:
                self.state = IDLE
                self._join_failed("no answer to the join")
            elif self.state == SENDING:
                self.state = IDLE
                self.failures += 1
                self._emit("send_failed", TIMEOUT)

    def take_event(self):
        if self.events:
            return self.events.pop(0)
        return None

    def busy(self):
        return self.state == JOINING or self.state == SENDING

    def join(self):
        """Start one OTAA join attempt."""
        self.join_attempts += 1
        self.state = JOINING          # before the command: a fast modem may answer at once
        try:
            self._start_join()
        except ModemError:
            self.state = IDLE
            raise
        if self.state == JOINING:
            self.deadline = ticks_add(self.clock.ticks_ms(), self.join_timeout_ms)

    def maintain(self):
        """Join when not joined and the backoff allows; call every turn."""
        if self.joined or self.busy() or self.state == ASLEEP:
            return
        now = self.clock.ticks_ms()
        if self.next_join_at is not None and ticks_diff(now, self.next_join_at) < 0:
            return
        try:
            self.join()
        except ModemError as exc:
            if exc.cause == DUTY_CYCLE and exc.wait_ms:
                # refused for the band's duty-cycle pause (RUI3: Restricted_Wait_<ms>_ms):
                # no join request went on air, so no backoff: try when the band is free
                self.state = IDLE
                self.next_join_at = ticks_add(now, exc.wait_ms + 100)
                return
            self._join_failed(exc.cause)

    def _joined(self):
        self.state = IDLE
        self.deadline = None
        self.joined = True
        self.join_backoff_ms = self.join_backoff_min_ms
        self.next_join_at = None
        self.dr = None
        self._emit("joined")

    def _jitter(self, ms):
        self._seed = (self._seed * 1103515245 + 12345) & 0x7FFFFFFF
        return ms + (self._seed % (ms // 4 + 1))

    def _join_failed(self, detail, wait_ms=0):
        self.state = IDLE
        self.deadline = None
        self.joined = False
        self.failures += 1
        delay = max(self._jitter(self.join_backoff_ms), wait_ms)
        self.next_join_at = ticks_add(self.clock.ticks_ms(), delay)
        self.join_backoff_ms = min(self.join_backoff_ms * 2, self.join_backoff_max_ms)
        self._emit("join_failed", detail)

    def rejoin(self):
        """Forget the session (e.g. after repeated send failures) and join again."""
        self.joined = False
        self.state = IDLE
        self.deadline = None
        self.next_join_at = None

    def send(self, port, data, confirmed=False):
        """Start an uplink; raises ModemError if the modem refuses it now."""
        if not self.joined:
            raise ModemError(NOT_JOINED)
        if self.busy():
            raise ModemError(BUSY, "a join or an uplink is under way")
        self.state = SENDING
        try:
            self._start_send(port, data, confirmed)
        except ModemError as exc:
            self.state = IDLE
            if exc.cause == NOT_JOINED:
                self.joined = False
            raise
        if self.state == SENDING:
            self.deadline = ticks_add(self.clock.ticks_ms(), self.send_timeout_ms)

    def _sent(self, acked):
        if self.state == SENDING:
            self.state = IDLE
            self.deadline = None
            if acked is False:
                self.failures += 1
            self._emit("sent", acked)

    def data_rate(self):
        """The data rate the next uplink will use (queried from the modem)."""
        dr = self._query_dr()
        if dr is not None:
            self.dr = dr
        return self.dr

    def max_payload(self):
        """Largest application payload at the current data rate (no FOpts)."""
        dr = self.dr if self.dr is not None else self.data_rate()
        return airtime.max_payload(0 if dr is None else dr)

    # --- dialect hooks --------------------------------------------------------

    def setup(self, dev_eui, join_eui, app_key, adr=True):
        raise NotImplementedError

    def _event(self, line):
        return False

    def _start_join(self):
        raise NotImplementedError

    def _start_send(self, port, data, confirmed):
        raise NotImplementedError

    def _query_dr(self):
        return None

    def _enter_sleep(self):
        raise ModemError(ERROR, "this modem has no sleep command")

    def _ping(self):
        """One short command that must be answered (ModemError if not)."""
        raise NotImplementedError

    def _wake_bytes(self):
        pass

    # --- sleep ---------------------------------------------------------------

    def sleep(self):
        """Put the modem to sleep between uplinks; False if it is busy or refuses."""
        if self.busy():
            return False
        try:
            self._enter_sleep()
        except ModemError:
            return False
        self.state = ASLEEP
        return True

    def wake(self):
        if self.state != ASLEEP:
            return
        self.state = IDLE
        self._wake_bytes()
        for _ in range(3):
            try:
                self._ping()             # the first bytes wake the module and may be lost
                return
            except ModemError:
                pass
