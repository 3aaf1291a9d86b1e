"""A loopback TCP proxy whose live connections a test can cut (a link that
drops mid-stream; docs/testing.md). New connections keep being accepted
after a cut, so a client can reconnect; `refuse()` makes it close new ones
at once, to hold a client in its reconnect loop."""
from __future__ import annotations

import socket
import threading
from typing import List


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int, listen: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((listen, 0))
        self.server.listen(16)
        self.address, self.port = self.server.getsockname()
        self.accepted = 0
        self.refusing = False
        self._live: List[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self._live += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Reset every live connection (both sides see the stream end)."""
        with self._lock:
            live, self._live = self._live, []
        for s in live:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()
            except OSError:
                pass

    def refuse(self, on: bool = True) -> None:
        self.refusing = on

    def close(self) -> None:
        self._closed = True
        self.server.close()
        self.cut()
