"""A TCP proxy that forwards every request to a server and drops a fraction of its responses.

What a lossy network does to a client: the server carries out the request (the write lands),
and the client sees its connection closed instead of the answer. Decisions come from a seeded
generator, one per response (an HTTP `100 Continue` is a response too).
"""

from __future__ import annotations

import random
import socket
import threading


class LossyProxy:
    """127.0.0.1:`port` -> 127.0.0.1:`upstream_port`, dropping each response with probability `drop`."""

    def __init__(self, upstream_port: int, drop: float, seed: int = 0):
        self.upstream_port = upstream_port
        self.drop = drop
        self.dropped = 0
        self.forwarded = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LossyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            Connection(self, client, upstream).start()

    def decide_drop(self) -> bool:
        with self._lock:
            drop = self._rng.random() < self.drop
            if drop:
                self.dropped += 1
            else:
                self.forwarded += 1
            return drop


class Connection:
    """One client connection and its upstream twin, pumped by two threads."""

    def __init__(self, proxy: LossyProxy, client: socket.socket, upstream: socket.socket):
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.awaiting_response = False  # the client sent something the server has not answered yet
        self.lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._requests, daemon=True).start()
        threading.Thread(target=self._responses, daemon=True).start()

    def _close(self) -> None:
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _requests(self) -> None:
        try:
            while chunk := self.client.recv(65536):
                with self.lock:
                    self.awaiting_response = True
                self.upstream.sendall(chunk)
        except OSError:
            pass
        self._close()

    def _responses(self) -> None:
        try:
            while chunk := self.upstream.recv(65536):
                with self.lock:
                    first = self.awaiting_response
                    self.awaiting_response = False
                if first and self.proxy.decide_drop():
                    break  # the server has acted; the client never hears of it
                self.client.sendall(chunk)
        except OSError:
            pass
        self._close()
