"""A command run with stdout and stderr on a pseudo-terminal: what a person
at a terminal sees (rich's styles, stderr's wrapped errors)."""
from __future__ import annotations

import os
import pty
import subprocess
import threading
from typing import Tuple


def run_in_pty(argv, cwd, env) -> Tuple[int, str]:
    """(exit code, everything the terminal showed) for `argv`, stdin empty."""
    main, child = pty.openpty()
    chunks = []

    def read():
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=child, stderr=child, cwd=cwd, env=env)
    os.close(child)
    try:
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        os.close(main)
    return code, b"".join(chunks).decode("utf-8", "replace")
