"""uvicorn in a thread of the gateway, with the limits an exposed server needs.

uvicorn (h11) already bounds header size (h11_max_incomplete_event_size),
closes idle keep-alive connections (timeout_keep_alive) and answers 503 past
limit_concurrency. Two things it leaves open, added here in a protocol
subclass (uvicorn's documented `http=` extension point):
- a header timeout: a connection that has not sent a complete request head
  within `header_timeout_s` of connecting (or of its previous response) is
  closed, so slow or half-open clients cannot hold sockets for ever;
- a hard connection cap: past `max_connections` a new connection is closed
  at once instead of being parsed.
Request bodies have their own deadline in the app (see app.read_body).
"""
import asyncio
import logging
import socket
import threading

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("vistelse.web")


def guarded_protocol(header_timeout_s, max_connections):
    refused = {"logged": -1e9, "n": 0}

    class GuardedH11(H11Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                now = self.loop.time()
                if now - refused["logged"] > 60:
                    log.warning("connection limit (%d) reached: closing new connections (%d since the last "
                                "message)", max_connections, refused["n"] + 1)
                    refused.update(logged=now, n=0)
                else:
                    refused["n"] += 1
                transport.close()
                return
            self._arm_header_timer()

        def _arm_header_timer(self):
            self._cycle_at_arm = self.cycle
            self._header_timer = self.loop.call_later(header_timeout_s, self._header_timeout)

        def _header_timeout(self):
            # no new request head since the timer was armed: the client is too slow (or gone)
            if self.cycle is self._cycle_at_arm and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self):
            super().on_response_complete()
            if not self.transport.is_closing():
                self._disarm()
                self._arm_header_timer()

        def _disarm(self):
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)
    return GuardedH11


class ServerThread:
    """Runs an ASGI app on a socket bound now (so port 0 gives a known port)."""

    def __init__(self, app, host, port, *, header_timeout_s=10, keep_alive_s=5, max_connections=200,
                 max_header_bytes=16384, backlog=128):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.sock.set_inheritable(True)
        self.port = self.sock.getsockname()[1]
        self.config = uvicorn.Config(
            app, http=guarded_protocol(header_timeout_s, max_connections), lifespan="off", log_config=None,
            access_log=False, server_header=False, timeout_keep_alive=keep_alive_s,
            limit_concurrency=max_connections, h11_max_incomplete_event_size=max_header_bytes,
            timeout_graceful_shutdown=5, backlog=backlog, ws="none")
        self.server = uvicorn.Server(self.config)
        self.thread = None
        self.loop = None

    def start(self):
        started = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            task = loop.create_task(self.server.serve(sockets=[self.sock]))
            loop.call_soon(started.set)
            try:
                loop.run_until_complete(task)
            finally:
                loop.close()
        self.thread = threading.Thread(target=run, name="web", daemon=True)
        self.thread.start()
        started.wait(10)

    def stop(self):
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)
        self.sock.close()

    def alive(self):
        return self.thread is not None and self.thread.is_alive()
