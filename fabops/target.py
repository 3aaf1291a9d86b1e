"""Where a command runs: the one place that tells a local `invoke.Context`
(the `local` sandbox host, the host's own cron path) from a
`fabric.Connection` (every SSH host). Everything else asks here instead of
probing the object for attributes (docs/architecture.md, "Layers").

Fabric's Connection is an invoke Context, so `c.run` is the same call on
both; what differs is only files (SFTP or a copy), the SSH transport, and
whether paths are this machine's. Imports nothing beyond the standard
library: the host side uses it too.
"""
from __future__ import annotations

import os
import shutil
from typing import Optional


def is_remote(c) -> bool:
    """True for a fabric.Connection (an SSH host), False for a local Context."""
    return hasattr(c, "client")


def transport(c):
    """The SSH transport, or None for a local Context (or a closed link)."""
    return c.client.get_transport() if is_remote(c) else None


def transport_alive(c) -> bool:
    t = transport(c)
    return bool(t and t.is_active())


def put(c, local: str, remote: str) -> None:
    """Upload a file: SFTP over SSH (`remote` relative to the login home or
    absolute), a copy on this machine (`remote` under ~ or absolute)."""
    if is_remote(c):
        c.put(local, remote=remote)
        return
    dest = os.path.expanduser(remote if remote.startswith("/") else "~/" + remote)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(local, dest)


def get(c, remote: str, local: str) -> None:
    """Download a file (`remote` may start with ~/): SFTP, or a copy."""
    if is_remote(c):
        c.get(remote[2:] if remote.startswith("~/") else remote, local=local)
        return
    shutil.copyfile(os.path.expanduser(remote), local)


def local_path(c, path: str) -> Optional[str]:
    """`path` as this machine sees it, when the target is this machine
    (expanded and absolute); None over SSH."""
    if is_remote(c):
        return None
    return os.path.abspath(os.path.expanduser(path))
