# RAK3172 with RUI3 firmware (AT commands at 115200 baud), EU868.
#
#   AT+NWM=1  AT+NJM=1  AT+BAND=4  AT+CLASS=A  AT+DEVEUI=  AT+APPEUI=  AT+APPKEY=
#   AT+JOIN=1:0:10:8 -> OK ... +EVT:JOINED | +EVT:JOIN_FAILED_RX_TIMEOUT
#   AT+SEND=<port>:<hex> -> OK ... +EVT:TX_DONE   (AT+CFM=1: +EVT:SEND_CONFIRMED_OK / _FAILED(n))
#   downlink: +EVT:RX_1:<rssi>:<snr>:UNICAST:<port>:<hex>
#   errors: AT_ERROR AT_PARAM_ERROR AT_BUSY_ERROR AT_NO_NETWORK_JOINED
#   duty cycle: Restricted_Wait_<ms>_ms, then AT_BUSY_ERROR
#
# style="rui3v3" answers queries with the bare value and splits a downlink
# over three event lines, as older RUI3 releases do; the driver must read
# both.
from .dialect import Dialect, parse_hex, to_hex
from . import session as S

RUI_VERSION = {"rui3v4": "RUI_4.0.6_RAK3172-E", "rui3v3": "RUI_3.5.2_RAK3172-E"}


class Rak3172(Dialect):
    baudrate = 115200

    def __init__(self, session, style="rui3v4"):
        Dialect.__init__(self, session)
        self.style = style
        self.settings = {"NWM": "1", "NJM": "1", "BAND": "4", "CLASS": "A", "CFM": "0", "ADR": "1",
                         "DEVEUI": session.dev_eui.upper(), "APPEUI": "0000000000000000",
                         "APPKEY": "00" * 16, "LPM": "0"}
        self.joining = False
        self.sending = False

    def _value(self, key, value):
        if self.style == "rui3v3":
            self.say(value)
        else:
            self.say("AT+%s=%s" % (key, value))
        self.say("OK")

    def handle(self, line):
        up = line.upper()
        if up == "AT":
            self.say("OK")
            return
        if not up.startswith("AT+"):
            self.say("AT_ERROR")
            return
        body = line[3:]
        if "=" in body:
            key, arg = body.split("=", 1)
        else:
            key, arg = body, None
        key = key.upper()
        if arg == "?":
            if key == "VER":
                self._value(key, RUI_VERSION.get(self.style, RUI_VERSION["rui3v4"]))
            elif key == "NJS":
                self._value(key, "1" if self.session.joined else "0")
            elif key == "DR":
                self._value(key, str(self.session.dr))
            elif key == "ADR":
                self._value(key, "1" if self.session.adr else "0")
            elif key in self.settings:
                self._value(key, self.settings[key])
            else:
                self.say("AT_ERROR")
            return
        if key == "JOIN":
            self._join(arg or "1:0:10:8")
        elif key == "SEND":
            self._send(arg)
        elif key == "DR":
            try:
                self.session.set_dr(int(arg))
                self.say("OK")
            except (TypeError, ValueError):
                self.say("AT_PARAM_ERROR")
        elif key == "ADR":
            if arg not in ("0", "1"):
                self.say("AT_PARAM_ERROR")
                return
            self.session.adr = arg == "1"
            self.say("OK")
        elif key == "SLEEP":
            ms = int(arg) if arg and arg.isdigit() else 0
            self.say("OK")
            self.asleep = True
            if ms:
                self.later(ms, self._wake)
        elif key in ("DEVEUI", "APPEUI", "APPKEY"):
            n = 32 if key == "APPKEY" else 16
            if arg is None or len(arg) != n or parse_hex(arg) is None:
                self.say("AT_PARAM_ERROR")
                return
            self.settings[key] = arg.upper()
            if key == "DEVEUI":
                self.session.dev_eui = arg.lower()
            self.say("OK")
        elif key in self.settings:
            if arg is None:
                self.say("AT_PARAM_ERROR")
                return
            self.settings[key] = arg
            self.say("OK")
        elif key == "RESET" or key == "Z":
            self.say("OK")
        else:
            self.say("AT_ERROR")

    def _wake(self):
        self.asleep = False

    def _join(self, arg):
        parts = arg.split(":")
        try:
            attempts = int(parts[3]) if len(parts) > 3 else 8
            interval_s = int(parts[2]) if len(parts) > 2 else 8
        except ValueError:
            self.say("AT_PARAM_ERROR")
            return
        if parts[0] == "0":
            self.say("OK")
            return
        if self.joining or self.sending:
            self.say("AT_BUSY_ERROR")
            return
        self.say("OK")
        self.joining = True
        self._attempt(max(1, attempts), interval_s)

    def _attempt(self, left, interval_s):
        wait = self.session.wait_ms()
        if wait:
            self.later(wait, self._attempt, left, interval_s)
            return
        ok, delay = self.session.join()
        if ok:
            self.later(delay, self._joined)
        else:
            self.later(delay, self._join_failed, left - 1, interval_s)

    def _joined(self):
        self.joining = False
        self.say("+EVT:JOINED")

    def _join_failed(self, left, interval_s):
        self.say("+EVT:JOIN_FAILED_RX_TIMEOUT")
        if left > 0:
            self.later(interval_s * 1000, self._attempt, left, interval_s)
        else:
            self.joining = False

    def _send(self, arg):
        if not arg or ":" not in arg:
            self.say("AT_PARAM_ERROR")
            return
        port_text, hex_text = arg.split(":", 1)
        data = parse_hex(hex_text)
        if not port_text.isdigit() or not 1 <= int(port_text) <= 223 or data is None:
            self.say("AT_PARAM_ERROR")
            return
        if self.joining or self.sending:
            self.say("AT_BUSY_ERROR")
            return
        result = self.session.check(len(data))
        if result == S.NOT_JOINED:
            self.say("AT_NO_NETWORK_JOINED")
        elif result == S.BUSY:
            self.say("AT_BUSY_ERROR")
        elif result == S.DUTY:
            self.say("Restricted_Wait_%d_ms" % self.session.wait_ms())
            self.say("AT_BUSY_ERROR")
        elif result == S.LENGTH:
            self.say("AT_PARAM_ERROR")
        else:
            confirmed = self.settings["CFM"] == "1"
            done_ms, down, acked = self.session.uplink(int(port_text), data, confirmed)
            self.say("OK")
            self.sending = True
            if down is not None:
                self.later(done_ms - 1200, self._downlink, down)
            self.later(done_ms, self._sent, confirmed, acked)

    def _downlink(self, down):
        port, data = down[0], down[1]
        if self.style == "rui3v3":
            self.say("+EVT:RX_1, RSSI -87, SNR 6")
            self.say("+EVT:UNICAST")
            self.say("+EVT:%d:%s" % (port, to_hex(data)))
        else:
            self.say("+EVT:RX_1:-87:6:UNICAST:%d:%s" % (port, to_hex(data)))

    def _sent(self, confirmed, acked):
        self.sending = False
        if not confirmed:
            self.say("+EVT:TX_DONE")
        elif acked:
            self.say("+EVT:SEND_CONFIRMED_OK")
        else:
            self.say("+EVT:SEND_CONFIRMED_FAILED(4)")
