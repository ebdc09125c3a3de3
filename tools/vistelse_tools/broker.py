"""The demo's MQTT broker: Debian's mosquitto when it is installed, else
amqtt (pure Python, from PyPI) in this process.

`make setup` installs mosquitto when run as root; on a machine where that
was not possible the demo still runs, on amqtt. Both listen on 127.0.0.1
only, on a free port, and accept anonymous clients (nothing leaves the
machine).
"""
import asyncio
import threading

from vistelse_gateway.testing import Mosquitto, free_port, mosquitto_path


class EmbeddedBroker:
    """amqtt's broker on its own asyncio loop in a thread."""

    name = "amqtt (embedded)"

    def __init__(self, port=None):
        self.port = port or free_port()
        self._loop = None
        self._broker = None

    def start(self):
        from amqtt.broker import Broker
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True).start()
        config = {"listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:%d" % self.port}},
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}

        async def start():
            broker = Broker(config)
            await broker.start()
            return broker
        self._broker = asyncio.run_coroutine_threadsafe(start(), self._loop).result(15)
        return self

    def stop(self):
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(15)
            self._broker = None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None


def start_broker(prefer="auto"):
    """A running broker on 127.0.0.1 (mosquitto if available): has .port, .name, .stop()."""
    if prefer in ("auto", "mosquitto") and mosquitto_path() is not None:
        broker = Mosquitto().start()
        broker.name = "mosquitto"
        return broker
    if prefer == "mosquitto":
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    return EmbeddedBroker().start()
