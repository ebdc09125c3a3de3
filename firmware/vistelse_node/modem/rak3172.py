# RAK3172 with RUI3 firmware: AT commands at 115200 baud.
#
# Replies differ between RUI3 releases: queries answer "AT+DR=3" or just
# "3"; a downlink is one line "+EVT:RX_1:-87:6:UNICAST:2:ABCD" or three
# ("+EVT:RX_1, RSSI -87, SNR 6", "+EVT:UNICAST", "+EVT:2:ABCD"). Both are
# read. A payload the data rate cannot carry is refused with
# AT_PARAM_ERROR (our port and hex are always valid, so that means
# LENGTH); a duty-cycle wait shows as "Restricted_Wait_<ms>_ms" before
# AT_BUSY_ERROR.
from vistelse_node.modem import base
from vistelse_node.modem.base import ModemError, first_int, is_hex, from_hex, to_hex


def _final(line):
    u = line.upper()
    return u == "OK" or "ERROR" in u or u.startswith("AT_")


class Rak3172(base.Modem):
    name = "rak3172"
    baudrate = 115200

    def __init__(self, uart, clock, **kw):
        base.Modem.__init__(self, uart, clock, **kw)
        self._restricted = 0

    def _ok(self, text, timeout_ms=None):
        lines = self.command(text, _final, timeout_ms)
        last = lines[-1]
        if last.upper() != "OK":
            self._raise(last, text)
        return lines

    def _raise(self, reply, what):
        u = reply.upper()
        if "NO_NETWORK_JOINED" in u or "NOT_JOINED" in u:
            raise ModemError(base.NOT_JOINED, reply)
        if "BUSY" in u:
            if self._restricted:
                wait, self._restricted = self._restricted, 0
                raise ModemError(base.DUTY_CYCLE, reply, wait)
            raise ModemError(base.BUSY, reply)
        if what.upper().startswith("AT+SEND") and ("PARAM" in u or "LENGTH" in u or "OVERFLOW" in u):
            raise ModemError(base.LENGTH, reply)
        raise ModemError(base.ERROR, reply)

    def setup(self, dev_eui, join_eui, app_key, adr=True):
        for _ in range(3):
            try:
                self._ok("AT", 500)
                break
            except ModemError:
                pass
        try:
            self._ok("AT+NWM=1", 3000)       # LoRaWAN mode (a change restarts the module)
        except ModemError:
            self._ok("AT", 3000)
        self._ok("AT+NJM=1")                  # OTAA
        self._ok("AT+BAND=4")                 # EU868
        self._ok("AT+CLASS=A")
        self._ok("AT+DEVEUI=" + dev_eui.upper())
        self._ok("AT+APPEUI=" + join_eui.upper())
        self._ok("AT+APPKEY=" + app_key.upper())
        self._ok("AT+ADR=" + ("1" if adr else "0"))
        self._ok("AT+CFM=0")
        self.confirmed = False
        try:
            lines = self._ok("AT+NJS=?")
            self.joined = self._value(lines) == 1
        except ModemError:
            self.joined = False

    def _value(self, lines):
        for line in lines:
            if line.upper() == "OK":
                continue
            at = line.find("=")
            v = first_int(line, at + 1 if at >= 0 else 0)
            if v is not None:
                return v
        return None

    def _start_join(self):
        # one attempt per call: the backoff between attempts is ours (base.maintain)
        self._ok("AT+JOIN=1:0:10:1")

    def _start_send(self, port, data, confirmed):
        if self.confirmed != confirmed:
            self._ok("AT+CFM=" + ("1" if confirmed else "0"))
            self.confirmed = confirmed
        self._restricted = 0
        self._ok("AT+SEND=%d:%s" % (port, to_hex(data)))

    def _query_dr(self):
        try:
            return self._value(self._ok("AT+DR=?"))
        except ModemError:
            return None

    def _event(self, line):
        u = line.upper()
        if u.startswith("RESTRICTED"):
            wait = first_int(line)
            self._restricted = wait if wait else 1000
            return True
        if not u.startswith("+EVT:"):
            return False
        if "JOINED" in u and "FAIL" not in u:
            self._joined()
        elif "JOIN" in u and "FAIL" in u:
            self._join_failed(line[5:])
        elif "TX_DONE" in u:
            self._sent(True)
        elif "CONFIRMED_OK" in u:
            self._sent(True)
        elif "CONFIRMED_FAIL" in u:
            self._sent(False)
        else:
            fields = line[5:].split(":")
            if len(fields) >= 2 and fields[-2].strip().isdigit() and is_hex(fields[-1].strip()):
                self._emit("downlink", int(fields[-2]), from_hex(fields[-1].strip()))
        return True

    def _enter_sleep(self):
        self._ok("AT+SLEEP")

    def _ping(self):
        self._ok("AT", 500)
