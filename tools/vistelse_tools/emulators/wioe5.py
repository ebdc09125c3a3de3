# Seeed Wio-E5 (LoRa-E5 AT firmware, 9600 baud), EU868: a test double of the
# vendor firmware. The firmware is closed; behaviour follows Seeed's "LoRa-E5
# AT Command Specification V1.0" (sections AT+JOIN, AT+MSG/MSGHEX/CMSGHEX,
# AT+LOWPOWER, error returns) and, for what the MAC does, LoRaMac-node's
# LoRaMacQueryTxPossible, the stack the module runs:
#
#   AT+JOIN when joined answers "Joined already" and does nothing;
#       AT+JOIN=FORCE starts a new join.
#   "Length error <n>": <n> application bytes fit now (MaxPossibleApplication-
#       DataSize). "Length error 0": pending MAC commands do not fit FOpts;
#       nothing is sent until an empty AT+MSG carries them (fPort 0).
#   Refusals: "Please join network first", "No band in <ms>ms", "No free
#       channel", "DR error", "LoRaWAN modem is busy".
#
#   AT+MODE=LWOTAA  AT+DR=EU868  AT+ID=DevEui,"…"  AT+ID=AppEui,"…"  AT+KEY=APPKEY,"…"
#   AT+JOIN -> +JOIN: Start, +JOIN: NORMAL, … +JOIN: Network joined, +JOIN: NetID … DevAddr …, +JOIN: Done
#   AT+PORT=<n>; AT+MSGHEX="…" / AT+CMSGHEX="…" -> +MSGHEX: Start … +MSGHEX: Done
#   downlink: +MSGHEX: PORT: 2; RX: "…"   (+CMSGHEX for confirmed uplinks)
#   errors: +MSGHEX: Please join network first | No band in <ms>ms | Length error <n> | LoRaWAN modem is busy
#   AT+LW=LEN -> +LW: LEN, <n>    AT+LOWPOWER -> +LOWPOWER: SLEEP (wakes on any byte)
from .dialect import Dialect, parse_hex, to_hex
from . import session as S


class WioE5(Dialect):
    baudrate = 9600

    def __init__(self, session, version="4.0.11"):
        Dialect.__init__(self, session)
        self.version = version
        self.mode = "LWOTAA"
        self.port = 8
        self.class_ = "A"
        self.keys = {"APPKEY": "00" * 16}
        self.ids = {"DEVEUI": session.dev_eui.upper(), "APPEUI": "0000000000000000"}
        self.joining = False
        self.sending = False

    def wake_by_uart(self):
        self.asleep = False
        self.say("+LOWPOWER: WAKEUP")

    def handle(self, line):
        up = line.upper()
        if up == "AT":
            self.say("+AT: OK")
            return
        if not up.startswith("AT+"):
            self.say("+AT: ERROR(-1)")
            return
        body = line[3:]
        if "=" in body:
            key, arg = body.split("=", 1)
            arg = arg.strip()
        else:
            key, arg = body, None
        key = key.strip().upper()
        if key == "VER":
            self.say("+VER: %s" % self.version)
        elif key == "MODE":
            if arg:
                if arg.upper() not in ("LWOTAA", "LWABP", "TEST"):
                    self.say("+MODE: ERROR(-1)")
                    return
                self.mode = arg.upper()
            self.say("+MODE: %s" % self.mode)
        elif key == "ID":
            self._id(arg)
        elif key == "KEY":
            name, _, value = (arg or "").partition(",")
            value = value.strip().strip('"').replace(":", "")
            if name.strip().upper() != "APPKEY" or len(value) != 32 or parse_hex(value) is None:
                self.say("+KEY: ERROR(-1)")
                return
            self.keys["APPKEY"] = value.upper()
            self.say("+KEY: APPKEY %s" % value.upper())
        elif key == "DR":
            self._dr(arg)
        elif key == "ADR":
            if arg:
                self.session.adr = arg.upper() == "ON"
            self.say("+ADR: %s" % ("ON" if self.session.adr else "OFF"))
        elif key == "CLASS":
            if arg:
                self.class_ = arg.upper()[:1]
            self.say("+CLASS: %s" % self.class_)
        elif key == "PORT":
            if arg:
                if not arg.isdigit() or not 1 <= int(arg) <= 223:
                    self.say("+PORT: ERROR(-1)")
                    return
                self.port = int(arg)
            self.say("+PORT: %d" % self.port)
        elif key == "LW":
            if arg and arg.upper().startswith("LEN"):
                self.say("+LW: LEN, %d" % self.session.app_room())
            else:
                self.say("+LW: ERROR(-1)")
        elif key == "JOIN":
            self._join(arg)
        elif key in ("MSGHEX", "CMSGHEX"):
            self._send(key, arg)
        elif key in ("MSG", "CMSG"):
            text = (arg or "").strip()
            if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
                text = text[1:-1]
            if text:
                self._send(key, to_hex(text.encode()))
            else:
                self._flush(key)
        elif key == "LOWPOWER":
            self.say("+LOWPOWER: SLEEP")
            self.asleep = True
        elif key == "RESET":
            self.say("+RESET: OK")
        else:
            self.say("+AT: ERROR(-10)")

    def _id(self, arg):
        if not arg:
            self.say("+ID: DevAddr, %s" % (self.session.dev_addr or "00000000"))
            self.say("+ID: DevEui, %s" % self.ids["DEVEUI"])
            self.say("+ID: AppEui, %s" % self.ids["APPEUI"])
            return
        name, _, value = arg.partition(",")
        name = name.strip().upper()
        value = value.strip().strip('"').replace(":", "").replace(" ", "")
        if name not in ("DEVEUI", "APPEUI") or len(value) != 16 or parse_hex(value) is None:
            self.say("+ID: ERROR(-1)")
            return
        self.ids[name] = value.upper()
        if name == "DEVEUI":
            self.session.dev_eui = value.lower()
        pretty = ":".join(value[i:i + 2].upper() for i in range(0, 16, 2))
        self.say("+ID: %s, %s" % ("DevEui" if name == "DEVEUI" else "AppEui", pretty))

    def _dr(self, arg):
        if not arg:
            sf = 12 - self.session.dr
            self.say("+DR: DR%d" % self.session.dr)
            self.say("+DR: EU868 DR%d  SF%d BW125K " % (self.session.dr, sf))
            return
        a = arg.upper()
        if a == "EU868":
            self.say("+DR: EU868")
            return
        if a.startswith("DR"):
            a = a[2:]
        if not a.isdigit() or int(a) > 5:
            self.say("+DR: ERROR(-1)")
            return
        self.session.set_dr(int(a))
        self.say("+DR: DR%d" % self.session.dr)

    def _join(self, arg):
        if self.mode != "LWOTAA":
            self.say("+JOIN: ERROR(-1)")
            return
        if self.session.joined and not (arg and arg.upper() == "FORCE"):
            self.say("+JOIN: Joined already")
            return
        if self.joining or self.sending:
            self.say("+JOIN: LoRaWAN modem is busy")
            return
        wait = self.session.wait_ms()
        if wait:
            self.say("+JOIN: No band in %dms" % wait)
            return
        self.say("+JOIN: Start")
        self.say("+JOIN: NORMAL")
        self.joining = True
        ok, delay = self.session.join()
        self.later(delay, self._join_done, ok)

    def _join_done(self, ok):
        self.joining = False
        if ok:
            self.say("+JOIN: Network joined")
            self.say("+JOIN: NetID 000013 DevAddr %s" % ":".join(
                self.session.dev_addr[i:i + 2].upper() for i in range(0, 8, 2)))
        else:
            self.say("+JOIN: Join failed")
        self.say("+JOIN: Done")

    def _flush(self, key):
        """An empty uplink: the pending MAC commands go alone."""
        if self.sending or self.joining:
            self.say("+%s: LoRaWAN modem is busy" % key)
            return
        result = self.session.check(0)
        if result == S.NOT_JOINED:
            self.say("+%s: Please join network first" % key)
            return
        if result == S.DUTY:
            self.say("+%s: No band in %dms" % (key, self.session.wait_ms()))
            return
        self.say("+%s: Start" % key)
        self.sending = True
        self.later(self.session.flush_mac(), self._done, key, False, False)

    def _send(self, key, arg):
        data = parse_hex(arg or "")
        if data is None:
            self.say("+%s: ERROR(-1)" % key)
            return
        if self.sending or self.joining:
            self.say("+%s: LoRaWAN modem is busy" % key)
            return
        result = self.session.check(len(data))
        if result == S.NOT_JOINED:
            self.say("+%s: Please join network first" % key)
        elif result == S.BUSY:
            self.say("+%s: LoRaWAN modem is busy" % key)
        elif result == S.DUTY:
            self.say("+%s: No band in %dms" % (key, self.session.wait_ms()))
        elif result == S.LENGTH:
            self.say("+%s: Length error %d" % (key, self.session.app_room()))
        else:
            confirmed = key == "CMSGHEX"
            done_ms, heard, acked = self.session.uplink(self.port, data, confirmed)
            self.say("+%s: Start" % key)
            self.sending = True
            if confirmed:
                self.say("+%s: Wait ACK" % key)
            self.later(done_ms, self._done, key, heard, confirmed and acked)

    def _done(self, key, heard, acked):
        self.sending = False
        down = self.session.receive() if heard else None
        if acked:
            self.say("+%s: ACK Received" % key)
        if down is not None:
            self.say("+%s: PORT: %d; RX: \"%s\"" % (key, down[0], to_hex(down[1])))
        if acked or down is not None:
            self.say("+%s: RXWIN1, RSSI -87, SNR 6.5" % key)
        self.say("+%s: Done" % key)
