"""Pure command builders shared by every module that talks to a host.

Every interpolated value goes through `shlex.quote` (docs/architecture.md, "Security defaults"). Runs on
the host too (Python 3.9).
"""
from __future__ import annotations

import shlex
from typing import Dict, Iterable, Optional

from .errors import SudoError

q = shlex.quote

SUDO_PASSWORD_MARKERS = ("a password is required", "a terminal is required", "no tty present")


def join(argv: Iterable[str]) -> str:
    """argv -> one shell-safe command line."""
    return " ".join(q(str(a)) for a in argv)


def sudo(argv: Iterable[str]) -> str:
    """`sudo -n …`: never hang on a password prompt; fail at once instead."""
    return "sudo -n " + join(argv)


def with_env(command: str, env: Optional[Dict[str, str]]) -> str:
    """Prefix `command` with quoted `export K=V;` assignments."""
    if not env:
        return command
    exports = " ".join(f"{k}={q(v)}" for k, v in env.items())
    return f"export {exports}; {command}"


def in_dir(path: str, command: str) -> str:
    """Run `command` in `path`; a path starting with ~/ is expanded by the
    host's shell (so it is left outside the quotes)."""
    return f"cd {quote_path(path)} && {command}"


def quote_path(path: str) -> str:
    """Quote a host path, keeping a leading ~/ expandable: "$HOME"/'rest'."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        rest = path[2:]
        return '"$HOME"/' + q(rest) if rest else '"$HOME"'
    return q(path)


def sudo_failure(stderr: str, argv: Iterable[str], host: Optional[str] = None) -> Optional[SudoError]:
    """If `stderr` says sudo wanted a password, the error that names the
    missing sudoers rule; otherwise None."""
    text = (stderr or "").lower()
    if not any(marker in text for marker in SUDO_PASSWORD_MARKERS):
        return None
    return SudoError(
        f"sudo needs a password for `{join(argv)}`: add a NOPASSWD rule for exactly this "
        "command (`inv setup` installs one under /etc/sudoers.d/)",
        host=host,
    )
