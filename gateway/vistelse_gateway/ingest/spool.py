"""Durable hand-off for HTTP ingest: accepted → on disk → 200.

ChirpStack's HTTP integration posts each event once (5 s timeout, no retry)
and The Things Stack's webhooks are not retried by default, so an answer of
"503, send again" loses the uplink. Instead, each request body is written to
a spool file and fsynced (file and directory) before the gateway answers;
the pipeline then commits it, and the file is removed only after the commit.
Files left behind by a crash are submitted again at start-up; the
pipeline's duplicate check makes that harmless.

The spool is bounded in bytes: when it is full (the store has been down for
long) the gateway answers 503, which is all that is left to do.
"""
import json
import os
import threading
import time
import uuid

HEADER_MAX = 4096


class SpoolFull(Exception):
    pass


class Spool:
    def __init__(self, directory, max_bytes):
        self.directory = directory
        self.max_bytes = max_bytes
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self.bytes = sum(os.path.getsize(p) for p, *_ in self._files())

    def _files(self):
        for name in sorted(os.listdir(self.directory)):
            if name.endswith(".msg"):
                path = os.path.join(self.directory, name)
                try:
                    os.stat(path)
                except FileNotFoundError:
                    continue
                yield (path,)

    def put(self, kind, where, content_type, body, received=None):
        """Write one message durably. -> path. Raises SpoolFull."""
        header = json.dumps({"kind": kind, "where": where, "content_type": content_type,
                             "received": received or time.time()}).encode()
        if len(header) > HEADER_MAX:
            raise ValueError("spool header too long")
        data = header + b"\n" + bytes(body)
        with self._lock:
            if self.bytes + len(data) > self.max_bytes:
                raise SpoolFull("ingest spool full (%d bytes)" % self.bytes)
            self.bytes += len(data)
        name = "%020d-%s.msg" % (time.time_ns(), uuid.uuid4().hex[:12])
        path = os.path.join(self.directory, name)
        tmp = path + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except BaseException:
            with self._lock:
                self.bytes -= len(data)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return path

    def done(self, path):
        try:
            size = os.path.getsize(path)
            os.unlink(path)
        except FileNotFoundError:
            return
        with self._lock:
            self.bytes -= size

    def pending(self):
        """-> [(path, kind, where, content_type, body, received)] left from before, oldest first."""
        out = []
        for name in os.listdir(self.directory):
            if name.endswith(".tmp"):       # never acknowledged: the client got no 200
                os.unlink(os.path.join(self.directory, name))
        for (path,) in self._files():
            with open(path, "rb") as f:
                data = f.read()
            header, _, body = data.partition(b"\n")
            try:
                h = json.loads(header)
            except ValueError:
                os.rename(path, path + ".bad")
                continue
            out.append((path, h["kind"], h["where"], h.get("content_type", ""), body, h.get("received")))
        return out

    def count(self):
        return sum(1 for _ in self._files())
