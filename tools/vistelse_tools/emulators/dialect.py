# What every AT dialect emulator shares: lines in, replies and timed
# events out, and a UART-like face (read/readinto/write/any) so a modem
# driver can be wired to it directly, in-process, with no serial port.
# Runs under CPython and MicroPython.


from .uart import EmulatedUart


class Dialect(EmulatedUart):
    baudrate = 115200
    echo = False

    def __init__(self, session):
        self.session = session
        self.now_ms = session.now_ms
        self._in = bytearray()
        self._out = bytearray()
        self._timers = []          # [due_ms, fn, args]
        self.asleep = False
        self.log = []              # (direction, line) for tests and the demo's trace

    # --- the wire ---------------------------------------------------------------

    def feed(self, data):
        """Bytes from the host (the node)."""
        if self.asleep and data:
            self.wake_by_uart()
        for b in data:
            if b in (10, 13):
                if self._in:
                    try:
                        line = bytes(self._in).decode().strip()
                    except UnicodeError:
                        line = ""
                    self._in = bytearray()
                    if line:
                        self.log.append((">", line))
                        if self.echo:
                            self.say(line)
                        self.handle(line)
            elif b != 0xFF:                  # wake-up bytes
                self._in.append(b)

    def say(self, line):
        self.log.append(("<", line))
        self._out.extend(line.encode() + b"\r\n")

    def later(self, delay_ms, fn, *args):
        self._timers.append([self.now_ms() + delay_ms, fn, args])

    def busy(self):
        return bool(self._timers)

    def poll(self):
        """Run the events that are due."""
        now = self.now_ms()
        while True:
            due = [t for t in self._timers if t[0] <= now]
            if not due:
                return
            first = min(due, key=lambda t: t[0])
            self._timers.remove(first)
            first[1](*first[2])

    def output(self):
        self.poll()
        data = bytes(self._out)
        self._out = bytearray()
        return data

    # --- UART face (uart.EmulatedUart) ------------------------------------------

    def _receive(self, data):
        self.feed(data)

    def _produce(self):
        self.poll()

    # --- to override ------------------------------------------------------------

    def handle(self, line):
        raise NotImplementedError

    def wake_by_uart(self):
        self.asleep = False


def parse_hex(text):
    text = text.strip().strip('"')
    if len(text) % 2:
        return None
    try:
        return bytes(int(text[i:i + 2], 16) for i in range(0, len(text), 2))
    except ValueError:
        return None


def to_hex(data):
    return "".join("%02X" % b for b in data)
