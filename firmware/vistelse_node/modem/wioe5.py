# Seeed Wio-E5 (LoRa-E5 AT firmware): AT commands at 9600 baud.
#
# Vendor behaviour encoded here, from Seeed's "LoRa-E5 AT Command
# Specification V1.0" (sections AT+JOIN, AT+MSGHEX/CMSGHEX, AT+MSG):
# - AT+JOIN while the module holds a session answers "Joined already" and
#   does nothing: a rejoin (after repeated send failures) uses AT+JOIN=FORCE.
# - "Length error <n>": <n> application bytes fit now; "Length error 0":
#   MAC commands are pending that do not fit FOpts and nothing can be sent
#   until an empty AT+MSG carries them alone (LoRaMac-node's
#   LoRaMacQueryTxPossible, MaxPossibleApplicationDataSize = 0). The driver
#   sends that empty uplink and reports LENGTH with on_air=True.
# - Refusals: "Please join network first" (NOT_JOINED), "No band in <ms>ms"
#   (DUTY_CYCLE with its wait), "No free channel" (DUTY_CYCLE: every enabled
#   channel is in its duty-cycle pause), "DR error" (ERROR: the data rate is
#   not allowed by the channel plan), "LoRaWAN modem is busy" (BUSY).
# - "Done" ends an uplink; for a confirmed uplink "ACK Received" before it is
#   the only proof it arrived. An unconfirmed "Done" is ("sent", None).
#
# Every reply starts with "+<COMMAND>:"; an uplink answers "Start" at once
# and "Done" after the receive windows, with "PORT: 2; RX: \"…\"" for a
# downlink and "ACK Received" for an acknowledged confirmed uplink in
# between. Refusals come at once: "Please join network first", "No band in
# <ms>ms" (duty cycle), "Length error <n>", "LoRaWAN modem is busy".
# AT+LW=LEN tells the payload room at the current data rate, MAC
# commands included, where the firmware knows it.
from vistelse_node import airtime
from vistelse_node.modem import base
from vistelse_node.modem.base import ModemError, first_int, is_hex, from_hex, to_hex


def _reply_of(cmd):
    tag = "+" + cmd.upper() + ":"

    def done(line):
        u = line.upper()
        return u.startswith(tag) or u.startswith("+AT:") or "ERROR" in u
    return done


class WioE5(base.Modem):
    name = "wioe5"
    baudrate = 9600

    def __init__(self, uart, clock, **kw):
        base.Modem.__init__(self, uart, clock, **kw)
        self.port = None
        self._join_ok = False
        self._acked = False
        self._msg = "MSGHEX"
        self._force = False           # the next join must replace the module's session

    def _cmd(self, text, name=None, timeout_ms=None):
        if name is None:
            name = text[3:].split("=")[0]
        lines = self.command(text, _reply_of(name), timeout_ms)
        last = lines[-1]
        if "ERROR" in last.upper():
            raise ModemError(base.ERROR, last)
        return lines

    def setup(self, dev_eui, join_eui, app_key, adr=True):
        for _ in range(3):
            try:
                self.command("AT", _reply_of("AT"), 500)
                break
            except ModemError:
                pass
        self._cmd("AT+MODE=LWOTAA")
        self._cmd("AT+DR=EU868")
        self._cmd('AT+ID=DevEui,"%s"' % dev_eui.upper(), "ID")
        self._cmd('AT+ID=AppEui,"%s"' % join_eui.upper(), "ID")
        self._cmd('AT+KEY=APPKEY,"%s"' % app_key.upper(), "KEY")
        self._cmd("AT+CLASS=A")
        self._cmd("AT+ADR=" + ("ON" if adr else "OFF"))

    def _refusal(self, line):
        u = line.upper()
        if "JOIN NETWORK FIRST" in u or "NOT JOINED" in u:
            return ModemError(base.NOT_JOINED, line)
        if "NO BAND" in u or "DUTY" in u:
            return ModemError(base.DUTY_CYCLE, line, first_int(line, u.find("BAND")) or 0)
        if "NO FREE CHANNEL" in u:
            return ModemError(base.DUTY_CYCLE, line)
        if "DR ERROR" in u:
            return ModemError(base.ERROR, line)
        if "LENGTH" in u:
            return ModemError(base.LENGTH, line)
        if "BUSY" in u:
            return ModemError(base.BUSY, line)
        if "ERROR" in u:
            return ModemError(base.ERROR, line)
        return None

    def _start_join(self):
        self._join_ok = False
        self._already = False
        for line in self.command("AT+JOIN=FORCE" if self._force else "AT+JOIN", _reply_of("JOIN")):
            if "ALREADY" in line.upper():
                self._already = True
                return
            err = self._refusal(line)
            if err is not None:
                raise err

    def join(self):
        base.Modem.join(self)
        if self._already and self.state == base.JOINING:   # the module kept its session
            self._joined()

    def rejoin(self):
        base.Modem.rejoin(self)
        self._force = True

    def _joined(self):
        self._force = False
        base.Modem._joined(self)

    def _start_send(self, port, data, confirmed):
        if self.port != port:
            self._cmd("AT+PORT=%d" % port)
            self.port = port
        self._msg = "CMSGHEX" if confirmed else "MSGHEX"
        self._acked = False
        lines = self.command('AT+%s="%s"' % (self._msg, to_hex(data)), _reply_of(self._msg))
        for line in lines:
            err = self._refusal(line)
            if err is not None:
                if err.cause == base.LENGTH and first_int(line, line.upper().find("LENGTH")) == 0:
                    self._flush_mac(line)
                raise err

    def _flush_mac(self, why):
        """An empty AT+MSG carries the pending MAC commands alone."""
        for line in self.command("AT+MSG", _reply_of("MSG")):
            if self._refusal(line) is not None:
                return                    # busy or duty cycle: the next attempt tries again
        raise ModemError(base.LENGTH, why, on_air=True)

    def _query_dr(self):
        try:
            lines = self.command("AT+DR", _reply_of("DR"))
        except ModemError:
            return None
        for line in lines:
            u = line.upper()
            at = u.find("DR", 3)
            if at >= 0:
                v = first_int(u, at)
                if v is not None and 0 <= v <= 15:
                    return v
        return None

    def max_payload(self):
        try:
            lines = self.command("AT+LW=LEN", _reply_of("LW"))
            for line in lines:
                if "LEN" in line.upper():
                    v = first_int(line, line.upper().find("LEN"))
                    if v is not None and 0 < v <= 242:
                        return v
        except ModemError:
            pass
        return base.Modem.max_payload(self)

    def _event(self, line):
        u = line.upper()
        if u.startswith("+JOIN:"):
            if self.state != base.JOINING or self._replies is not None and (
                    "START" in u or "NORMAL" in u or "ALREADY" in u or self._refusal(line) is not None):
                return False              # the immediate reply to AT+JOIN
            if "FAIL" in u:
                self._join_ok = False
            elif "JOINED" in u or "DEVADDR" in u:
                self._join_ok = True
            elif "DONE" in u:
                if self._join_ok:
                    self._joined()
                else:
                    self._join_failed("join failed")
            return True
        if u.startswith("+MSGHEX:") or u.startswith("+CMSGHEX:") or u.startswith("+MSG:") or u.startswith("+CMSG:"):
            if "PORT" in u and "RX" in u:
                # a downlink, also in the windows of the empty uplink that flushed MAC commands
                port = first_int(line, u.find("PORT"))
                q1 = line.find('"')
                q2 = line.rfind('"')
                text = line[q1 + 1:q2].replace(" ", "") if 0 <= q1 < q2 else ""
                if port is not None and is_hex(text):
                    self._emit("downlink", port, from_hex(text))
                return True
            if self.state != base.SENDING or self._replies is not None and (
                    "START" in u or "WAIT" in u or self._refusal(line) is not None):
                return False              # the immediate reply to a send command (or the flush's end)
            if "ACK RECEIVED" in u:
                self._acked = True
            elif "DONE" in u:
                self._sent(self._acked if self._msg == "CMSGHEX" else None)
            return True
        if u.startswith("+LOWPOWER:"):
            return self._replies is None      # "WAKEUP" arrives unasked
        return False

    def _enter_sleep(self):
        self.command("AT+LOWPOWER", _reply_of("LOWPOWER"))

    def _wake_bytes(self):
        self.uart.write(b"\xff\xff\xff\xff")   # the Wio-E5 wakes on UART activity; these bytes are lost

    def _ping(self):
        self.command("AT", _reply_of("AT"), 500)
