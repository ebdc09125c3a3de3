# The UART face every emulator shows a driver (read/readinto/write/any), so
# a driver can be wired to an emulator directly, in-process, with no serial
# port. Runs under CPython and MicroPython.


class EmulatedUart:
    """Subclasses keep outgoing bytes in self._out and implement
    _receive(data) (bytes from the driver) and _produce() (make what is
    due); _chunk(n) may shorten a read, as a slow line does."""

    def _receive(self, data):
        raise NotImplementedError

    def _produce(self):
        pass

    def _chunk(self, n):
        return n

    def write(self, data):
        self._receive(bytes(data))
        return len(data)

    def any(self):
        self._produce()
        return len(self._out)

    def read(self, n=-1):
        self._produce()
        if not self._out:
            return None
        if n is None or n < 0 or n > len(self._out):
            n = len(self._out)
        n = self._chunk(n)
        data = bytes(self._out[:n])
        self._out = self._out[n:]
        return data

    def readinto(self, buf, nbytes=None):
        data = self.read(len(buf) if nbytes is None else nbytes)
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)
