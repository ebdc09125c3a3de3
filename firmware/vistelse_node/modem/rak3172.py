# RAK3172 with RUI3 firmware: AT commands at 115200 baud.
#
# Vendor behaviour encoded here, from the RUI3 source
# (github.com/RAKWireless/RAK-STM32-RUI, cores/STM32WLE/component/service/):
#
# - AT+NWM=<mode> reboots the module on EVERY call, even when the mode does
#   not change, after an "OK" with no line ending (mode/cli/atcmd_p2p.c
#   At_NwkWorkMode). The mode is read first and set only when it is not
#   LoRaWAN; after a set the module is given time to restart.
# - AT+JOIN=1:0:<period>:<max>: <max> is the number of retries AFTER the
#   first attempt (lora/service_lora.c MlmeConfirm: "++auto_join_retry_cnt >
#   max_cnt" stops). We ask for 0 retries: one attempt per join(), the
#   backoff between attempts is ours (base.maintain); a module retrying on
#   its own would answer our next join with AT_BUSY_ERROR.
# - An unconfirmed uplink ends with +EVT:TX_DONE whatever its status (also
#   after a radio TX timeout: lora/service_lora.c McpsConfirm), so TX_DONE
#   proves nothing: it is reported as ("sent", None). A confirmed uplink
#   ends with +EVT:SEND_CONFIRMED_OK (acked) or _FAILED(<status>).
# - A payload that does not fit (with the MAC commands pending in FOpts) is
#   refused with AT_PARAM_ERROR after an EMPTY uplink went on air to flush
#   the MAC commands (lora/service_lora.c service_lora_send): LENGTH with
#   on_air=True. That empty uplink ends with a TX_DONE of its own, which
#   arrives when no uplink of ours is under way and is ignored.
# - AT+SLEEP answers "OK" only after the module wakes (mode/cli/atcmd_sleep.c:
#   udrv_sleep_ms() runs before the return): the command is written and not
#   waited for; UART activity wakes the module and the late "OK" is
#   discarded as unasked.
# - A duty-cycle refusal prints "Restricted_Wait_<ms>_ms" before
#   AT_BUSY_ERROR.
#
# Replies differ between RUI3 releases: queries answer "AT+DR=3" or just
# "3"; a downlink is one line "+EVT:RX_1:-87:6:UNICAST:2:ABCD" or three
# ("+EVT:RX_1, RSSI -87, SNR 6", "+EVT:UNICAST", "+EVT:2:ABCD"). Both are
# read.
from vistelse_node.modem import base
from vistelse_node.modem.base import ModemError, first_int, is_hex, from_hex, to_hex

REBOOT_WAIT_MS = 5000       # a restart after AT+NWM (RUI3 boots in about a second)


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
        if what.upper().startswith("AT+SEND") and "PARAM" in u:
            # our port and hex are always valid: the payload did not fit, and
            # the module sent an empty uplink to flush its MAC commands
            raise ModemError(base.LENGTH, reply, on_air=True)
        raise ModemError(base.ERROR, reply)

    def _sync(self, tries=3, timeout_ms=500):
        for _ in range(tries):
            try:
                self._ok("AT", timeout_ms)
                return True
            except ModemError:
                pass
        return False

    def setup(self, dev_eui, join_eui, app_key, adr=True):
        self._sync()
        if self._value(self._ok("AT+NWM=?")) != 1:
            self._write("AT+NWM=1")           # "OK" without a line ending, then a restart
            start = self.clock.ticks_ms()
            self.clock.sleep_ms(500)
            self._pump()
            self._line = bytearray()          # the unterminated "OK" and any start-up noise
            while not self._sync(1):
                if base.ticks_diff(self.clock.ticks_ms(), start) > REBOOT_WAIT_MS:
                    raise ModemError(base.TIMEOUT, "no answer after AT+NWM=1 restarted the module")
        self._ok("AT+NJM=1")                  # OTAA
        self._ok("AT+BAND=4")                 # EU868
        self._ok("AT+CLASS=A")
        self._ok("AT+DEVEUI=" + dev_eui.upper())
        self._ok("AT+APPEUI=" + join_eui.upper())
        self._ok("AT+APPKEY=" + app_key.upper())
        self._ok("AT+ADR=" + ("1" if adr else "0"))
        self._ok("AT+RETY=0")                 # no retransmissions the send policy does not count
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
        # one attempt, no retries by the module (the 4th field counts retries)
        self._ok("AT+JOIN=1:0:10:0")

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
            self._sent(None)                  # printed whatever the status: no proof
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
        self._write("AT+SLEEP")               # its OK comes after the wake-up

    def _wake_bytes(self):
        self.uart.write(b"\r\n")              # wakes the module; the first byte is lost
        self.clock.sleep_ms(10)

    def _ping(self):
        self._ok("AT", 500)
