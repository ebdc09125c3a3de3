# RAK3172 with RUI3 firmware (AT commands at 115200 baud), EU868: a test
# double of the vendor firmware, not of our driver. Behaviour follows the
# RUI3 source, github.com/RAKWireless/RAK-STM32-RUI (RUI_5.0.0 SDK), files
# under cores/STM32WLE/component/service/ (cited as mode/cli/... and lora/...):
#
#   AT+JOIN=<start>:<auto>:<period 7..255 s>:<max 0..255>
#       lora/service_lora.c MlmeConfirm: after a failed attempt
#       "if (++auto_join_retry_cnt > max_cnt) stop, else retry after <period>":
#       <max> counts retries AFTER the first attempt (":1" = two attempts).
#       A join while the MAC is busy (an attempt or an uplink under way):
#       AT_BUSY_ERROR (service_lora_join: LORAMAC_STATUS_BUSY -> -UDRV_BUSY).
#       Duty cycle: "Restricted_Wait_<ms>_ms" then AT_BUSY_ERROR, and a retry
#       is scheduled like a failed attempt if <max> allows.
#       Events: +EVT:JOINED | +EVT:JOIN_FAILED_RX_TIMEOUT.
#   AT+NWM=<0|1|2>  mode/cli/atcmd_p2p.c At_NwkWorkMode: prints "OK" with NO
#       line ending and reboots (udrv_system_reboot), on every call, even
#       when the mode does not change. The session is lost. AT+NWM=? answers.
#   AT+SEND=<port>:<hex>  mode/cli/atcmd_join_send.c At_Send ->
#       lora/service_lora.c service_lora_send: not joined -> AT_NO_NETWORK_JOINED;
#       MAC busy -> AT_BUSY_ERROR; LoRaMacQueryTxPossible fails (payload +
#       pending FOpts too long) -> an EMPTY unconfirmed uplink is sent to flush
#       the MAC commands and the command answers AT_PARAM_ERROR (that empty
#       uplink later ends with its own +EVT:TX_DONE); duty cycle ->
#       "Restricted_Wait_<ms>_ms", AT_BUSY_ERROR.
#   Outcome (lora/service_lora.c McpsConfirm): a confirmed uplink ends with
#       +EVT:SEND_CONFIRMED_OK or +EVT:SEND_CONFIRMED_FAILED(<status>); an
#       unconfirmed one with +EVT:TX_DONE WHATEVER its status (a radio TX
#       timeout prints TX_DONE too: nothing went on air).
#   AT+SLEEP[=<ms>]  mode/cli/atcmd_sleep.c At_Sleep: udrv_sleep_ms() first,
#       "OK" only after waking (UART activity or the end of <ms>).
#   downlink: +EVT:RX_1:<rssi>:<snr>:UNICAST:<port>:<hex>
#   errors: mode/cli/atcmd.c atcmd_err_tbl: AT_ERROR AT_PARAM_ERROR
#       AT_BUSY_ERROR AT_NO_NETWORK_JOINED AT_MODE_NO_SUPPORT AT_COMMAND_NOT_FOUND
#   AT+RETY (default 0, service/nvm/service_nvm.c): retransmissions of a
#       confirmed uplink without ack.
#
# style="rui3v3" answers queries with the bare value and splits a downlink
# over three event lines, as older RUI3 releases do; the driver must read
# both.
from .dialect import Dialect, parse_hex, to_hex
from . import session as S

RUI_VERSION = {"rui3v4": "RUI_4.0.6_RAK3172-E", "rui3v3": "RUI_3.5.2_RAK3172-E"}
REBOOT_MS = 1000          # module start-up after AT+NWM (not in the source; a bound for tests)
TX_TIMEOUT_STATUS = 2     # LORAMAC_EVENT_INFO_STATUS_TX_TIMEOUT
RX2_TIMEOUT_STATUS = 4    # LORAMAC_EVENT_INFO_STATUS_RX2_TIMEOUT (no ack)


class Rak3172(Dialect):
    baudrate = 115200

    def __init__(self, session, style="rui3v4"):
        Dialect.__init__(self, session)
        self.style = style
        self.settings = {"NWM": "1", "NJM": "1", "BAND": "4", "CLASS": "A", "CFM": "0", "ADR": "1",
                         "DEVEUI": session.dev_eui.upper(), "APPEUI": "0000000000000000",
                         "APPKEY": "00" * 16, "LPM": "0", "RETY": "0"}
        self.joining = False
        self.sending = False
        self.rebooting = False
        self.reboots = 0
        self.join_max = 0             # AT+JOIN 4th parameter, kept like RUI3 keeps it in NVM
        self.join_period_s = 8
        self._retry_cnt = 0
        self._sleep_reply = False

    def _value(self, key, value):
        if self.style == "rui3v3":
            self.say(value)
        else:
            self.say("AT+%s=%s" % (key, value))
        self.say("OK")

    def feed(self, data):
        if self.rebooting:
            return                    # nothing listens while the module restarts
        if self.asleep and data:
            self.wake_by_uart()
            data = data[1:]           # the byte that wakes the MCU is lost
        Dialect.feed(self, data)

    def wake_by_uart(self):
        # At_Sleep returns (and prints OK) once udrv_sleep_ms() ends
        self._timers = [t for t in self._timers if t[1] != self._wake]
        self._wake()

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
            elif key == "JOIN":
                self._value(key, "0:0:%d:%d" % (self.join_period_s, self.join_max))
            elif key in self.settings:
                self._value(key, self.settings[key])
            else:
                self.say("AT_COMMAND_NOT_FOUND")
            return
        if key == "NWM":
            self._nwm(arg)
        elif key == "JOIN":
            self._join(arg)
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
            self._sleep(arg)
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
            if not arg:
                self.say("AT_PARAM_ERROR")
                return
            self.settings[key] = arg
            self.say("OK")
        elif key == "RESET" or key == "Z":
            self.say("OK")
        else:
            self.say("AT_COMMAND_NOT_FOUND")

    # --- AT+NWM: every set reboots -------------------------------------------

    def _nwm(self, arg):
        if arg is None or len(arg) != 1 or arg not in "012":
            self.say("AT_PARAM_ERROR")
            return
        self.settings["NWM"] = arg
        self.log.append(("<", "OK"))
        self._out.extend(b"OK")               # atcmd_printf("OK"): no line ending
        self._reboot()

    def _reboot(self):
        self.reboots += 1
        self.rebooting = True
        self.joining = self.sending = False
        self._timers = []
        self._in = bytearray()
        self.session.joined = False           # the MAC session lives in RAM
        self.later(REBOOT_MS, self._booted)

    def _booted(self):
        self.rebooting = False

    # --- AT+SLEEP ------------------------------------------------------------

    def _sleep(self, arg):
        if arg is not None and (not arg.isdigit() or int(arg) == 0):
            self.say("AT_PARAM_ERROR")
            return
        self.asleep = True
        self._sleep_reply = True
        if arg:
            self.later(int(arg), self._wake)

    def _wake(self):
        self.asleep = False
        if self._sleep_reply:
            self._sleep_reply = False
            self.say("OK")

    # --- join ----------------------------------------------------------------

    def _join(self, arg):
        if self.settings["NWM"] != "1":
            self.say("AT_MODE_NO_SUPPORT")
            return
        parts = (arg or "1").split(":")
        if len(parts) > 4 or not all(p.isdigit() for p in parts):
            self.say("AT_PARAM_ERROR")
            return
        vals = [int(p) for p in parts]
        if vals[0] not in (0, 1) or (len(vals) > 1 and vals[1] not in (0, 1)) \
                or (len(vals) > 2 and not 7 <= vals[2] <= 255) or (len(vals) > 3 and vals[3] > 255):
            self.say("AT_PARAM_ERROR")
            return
        if len(vals) > 2:
            self.join_period_s = vals[2]
        if len(vals) > 3:
            self.join_max = vals[3]
        if vals[0] == 0:
            self._timers = [t for t in self._timers if t[1] != self._attempt]
            self._retry_cnt = 0
            self.joining = False
            self.say("OK")
            return
        if self.joining or self.sending:
            self.say("AT_BUSY_ERROR")
            return
        self._retry_cnt = 0
        if self._attempt(True):
            self.say("OK")

    def _attempt(self, from_command=False):
        wait = self.session.wait_ms()
        if wait:
            self._retry_later()
            self.say("Restricted_Wait_%d_ms" % wait)
            if from_command:
                self.say("AT_BUSY_ERROR")
            return False
        self.joining = True
        ok, delay = self.session.join()
        self.later(delay, self._joined if ok else self._join_failed)
        return True

    def _retry_later(self):
        self._retry_cnt += 1
        if self._retry_cnt > self.join_max:
            self._retry_cnt = 0
            return
        self.later(self.join_period_s * 1000, self._attempt)

    def _joined(self):
        self.joining = False
        self._retry_cnt = 0
        self.say("+EVT:JOINED")

    def _join_failed(self):
        self.say("+EVT:JOIN_FAILED_RX_TIMEOUT")
        self._retry_later()
        self.joining = any(t[1] == self._attempt for t in self._timers)

    # --- uplink --------------------------------------------------------------

    def _send(self, arg):
        if self.settings["NWM"] != "1":
            self.say("AT_MODE_NO_SUPPORT")
            return
        if not arg or ":" not in arg:
            self.say("AT_PARAM_ERROR")
            return
        port_text, hex_text = arg.split(":", 1)
        data = parse_hex(hex_text)
        if not port_text.isdigit() or not 1 <= int(port_text) <= 223 or not data or len(hex_text) > 500:
            self.say("AT_PARAM_ERROR")
            return
        if not self.session.joined:
            self.say("AT_NO_NETWORK_JOINED")
            return
        if self.joining or self.sending:
            self.say("AT_BUSY_ERROR")
            return
        result = self.session.check(len(data))
        if result == S.BUSY:
            self.say("AT_BUSY_ERROR")
        elif result == S.DUTY:
            self.say("Restricted_Wait_%d_ms" % self.session.wait_ms())
            self.say("AT_BUSY_ERROR")
        elif result == S.LENGTH:
            # service_lora_send: "if invalid, still send null packet for
            # respond ack and trigger adr mechanism", then -UDRV_WRONG_ARG
            done_ms = self.session.flush_mac()
            self.sending = True
            self.later(done_ms, self._sent, False, True, True)
            self.say("AT_PARAM_ERROR")
        else:
            confirmed = self.settings["CFM"] == "1"
            if self.session.tx_fails():
                self.say("OK")
                self.sending = True
                self.later(3000, self._sent, confirmed, False, False)
                return
            done_ms, heard, acked = self.session.uplink(int(port_text), data, confirmed)
            self.say("OK")
            self.sending = True
            if heard:
                self.later(done_ms - 1200, self._downlink)
            self.later(done_ms, self._sent, confirmed, acked, True)

    def _downlink(self):
        down = self.session.receive()         # RX1 opens: whatever the network has queued now
        if down is None:
            return
        port, data = down[0], down[1]
        if self.style == "rui3v3":
            self.say("+EVT:RX_1, RSSI -87, SNR 6")
            self.say("+EVT:UNICAST")
            self.say("+EVT:%d:%s" % (port, to_hex(data)))
        else:
            self.say("+EVT:RX_1:-87:6:UNICAST:%d:%s" % (port, to_hex(data)))

    def _sent(self, confirmed, acked, on_air):
        self.sending = False
        if not confirmed:
            self.say("+EVT:TX_DONE")          # printed whatever the status
        elif acked:
            self.say("+EVT:SEND_CONFIRMED_OK")
        else:
            self.say("+EVT:SEND_CONFIRMED_FAILED(%d)" % (RX2_TIMEOUT_STATUS if on_air else TX_TIMEOUT_STATUS))
