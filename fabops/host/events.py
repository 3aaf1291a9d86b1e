"""The event stream of one run: `<host home>/runs/<id>.jsonl`.

A deploy starts the host-side run detached and follows this file, so a
dropped SSH connection never stops the run. The host writes a heartbeat at
least every second; the last event of a run has `"kind": "result"`.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Callable, List, Optional

from .files import ensure_dir

HEARTBEAT = 1.0


def new_run_id() -> str:
    # os.urandom, not `secrets`: that module pulls in hashlib, random and
    # base64, measurable on the cron path.
    return time.strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()


class EventLog:
    """Append events to a run file (if any) and pass them to listeners."""

    def __init__(self, path: Optional[str] = None, listeners: Optional[List[Callable[[dict], None]]] = None):
        self.path = path
        self.listeners = list(listeners or [])
        self._lock = threading.Lock()
        self._fd: Optional[int] = None
        self._stop = threading.Event()
        self._beat: Optional[threading.Thread] = None
        self.step = ""
        if path:
            ensure_dir(os.path.dirname(path))
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def emit(self, kind: str, **fields) -> dict:
        event = {"t": round(time.time(), 3), "kind": kind}
        event.update(fields)
        if kind == "step":
            self.step = fields.get("step", self.step)
        line = (json.dumps(event, sort_keys=True, default=str) + "\n").encode()
        with self._lock:
            if self._fd is not None:
                os.write(self._fd, line)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken renderer must not stop a deploy
                pass
        return event

    def start_heartbeat(self, interval: float = HEARTBEAT) -> None:
        if self._fd is None or self._beat is not None:
            return

        def beat():
            while not self._stop.wait(interval):
                self.emit("heartbeat", step=self.step)

        self._beat = threading.Thread(target=beat, name="fabops-heartbeat", daemon=True)
        self._beat.start()

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=2)
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
