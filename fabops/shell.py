"""Typed shell commands: the one quoting path (docs/architecture.md,
"Commands").

A command is built from parts with `sh(template, **values)`:

- the template is shell code written here, in fabops' source (a string
  literal: tests/test_commands.py fails on anything else);
- a plain value (str, from hosts.yml, a flag, git output) is always quoted;
- `path(p)` is a host path that may start with ~/ (expanded by the host's
  shell, the rest quoted);
- a `Cmd` (what `sh`, `join`, `sudo`, `q` and the builders return) is
  embedded as it is; `raw("...")` marks a literal of fabops' own shell code,
  and `inventory_shell(text)` the shell code hosts.yml holds by design
  (`run:`, `command:`, `setup_command:`);
- numbers are written as numbers; a list or tuple is its quoted words.

So a value can reach a shell unquoted only through `raw` or
`inventory_shell`, which a reviewer sees and the structure test checks.
Modelled on pyinfra's StringCommand/QuoteString, in our own code. Runs on
the host too (Python 3.9): standard library only.
"""
from __future__ import annotations

import re
import shlex
from typing import Any, Dict, Iterable, Optional

from .errors import SudoError

SUDO_PASSWORD_MARKERS = ("a password is required", "a terminal is required", "no tty present")


class Cmd(str):
    """Shell text that fabops built: safe to run, and safe to embed in another
    command as it is. A str, so `c.run(cmd)` takes it unchanged."""

    __slots__ = ()


class HostPath:
    """A path on the host; a leading ~/ stays expandable: "$HOME"/'rest'."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = str(path)


def path(p: str) -> HostPath:
    return HostPath(p)


def raw(code: str) -> Cmd:
    """A literal of fabops' own shell code (the structure test requires a
    string literal here)."""
    return Cmd(code)


def inventory_shell(code: str) -> Cmd:
    """Shell code from hosts.yml, shell by design (`run:`, `command:`,
    `setup_command:`), written by the inventory's author."""
    return Cmd(code)


def q(value: Any) -> Cmd:
    """One quoted word."""
    return Cmd(shlex.quote(str(value)))


def quote_path(p: str) -> Cmd:
    """Quote a host path, keeping a leading ~/ expandable: "$HOME"/'rest'."""
    p = str(p)
    if p == "~":
        return Cmd('"$HOME"')
    if p.startswith("~/"):
        rest = p[2:]
        return Cmd('"$HOME"/' + shlex.quote(rest) if rest else '"$HOME"')
    return q(p)


def as_cmd(command: Any) -> Cmd:
    """`command` if it is a Cmd. A plain str here would be shell code from
    nowhere: refused, so that no builder can splice one unquoted."""
    if not isinstance(command, Cmd):
        raise TypeError(f"expected a Cmd (built with sh/join/raw), got {type(command).__name__}: {command!r:.80}")
    return command


def render(value: Any) -> str:
    """One value as shell text: see the module docstring."""
    if isinstance(value, Cmd):
        return value
    if isinstance(value, HostPath):
        return quote_path(value.path)
    if isinstance(value, bool):
        raise TypeError("a bool is not a shell word; choose the flag in the template")
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple)):
        return " ".join(render(v) for v in value)
    return shlex.quote(str(value))


def sh(template: str, /, *args: Any, **values: Any) -> Cmd:
    """`template` (str.format syntax; shell braces doubled) with every value
    rendered by `render`."""
    return Cmd(template.format(*(render(a) for a in args), **{k: render(v) for k, v in values.items()}))


def lines(cmds: Iterable[Any], sep: str = "\n") -> Cmd:
    """Commands one after another (each must be a Cmd)."""
    return Cmd(sep.join(as_cmd(c) for c in cmds))


def join(argv: Iterable[Any]) -> Cmd:
    """argv -> one shell-safe command line."""
    return Cmd(" ".join(render(a) if isinstance(a, (Cmd, HostPath)) else shlex.quote(str(a)) for a in argv))


_PROGRAM = ["fabops"]


def program() -> str:
    """The program a person ran to start this run, `fabops` or `inv`, for
    the commands a message tells them to run next: `inv` works only next to
    a tasks.py, so a hint says what worked (docs/architecture.md, "Command
    line"). Set once by the entry point (set_program); `fabops`, the one
    that works anywhere, until then."""
    return _PROGRAM[-1]


def set_program(name: str) -> None:
    """The entry point's word: cli.run_program (`fabops`), tasks.program's
    serve_inv (`inv`), the agent's run (the binary its client named)."""
    _PROGRAM[:] = ["inv" if name.startswith("inv") else "fabops"]


def sudo(argv: Iterable[Any]) -> Cmd:
    """`sudo -n …`: never hang on a password prompt; fail at once instead."""
    return sh("sudo -n {argv}", argv=join(argv))


_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


ENV_SCRIPT_HEAD = ("# Managed by fabops: the inventory's `env`, sourced by every fabops command over SSH\n"
                   "# (its values never go in a command line: docs/security.md).\n")


def env_file_text(env: Optional[Dict[str, str]]) -> str:
    """The text of fabops' env.sh on a host (0600 in its 0700 home): one
    quoted `export K=V` a line. Commands over SSH source it
    (target.Target.run) instead of carrying the values in their argv."""
    lines = []
    for key, value in (env or {}).items():
        if not _ENV_KEY.match(key):  # validated in hosts.yml; a name is never quoted, so check again
            raise ValueError(f"not an environment variable name: {key!r}")
        lines.append(f"export {key}={shlex.quote(str(value))}\n")
    return ENV_SCRIPT_HEAD + "".join(lines)


def source_env(env_file: str) -> Cmd:
    """Source fabops' env.sh when it is there (setup and every host-side
    run write it)."""
    return sh("[ ! -r {f} ] || . {f}; ", f=path(env_file))


def with_env(command: Cmd, env: Optional[Dict[str, str]]) -> Cmd:
    """Prefix `command` with quoted `export K=V;` assignments."""
    if not env:
        return as_cmd(command)
    for key in env:
        if not _ENV_KEY.match(key):  # validated in hosts.yml; a name is never quoted, so check again
            raise ValueError(f"not an environment variable name: {key!r}")
    exports = Cmd(" ".join(k + "=" + shlex.quote(str(v)) for k, v in env.items()))
    return sh("export {exports}; {command}", exports=exports, command=as_cmd(command))


def in_dir(p: str, command: Cmd) -> Cmd:
    """Run `command` in host path `p` (~/ expanded by the host's shell)."""
    return sh("cd {p} && {command}", p=path(p), command=as_cmd(command))


def tune_runner() -> None:
    """Invoke's runner sleeps `input_sleep` (10 ms) between polls of a running
    command: ~10 ms added to every command, ~40 ms of a no-op update. 2 ms
    keeps polling cheap (a few hundred wake-ups a second, only while a
    command runs). Used over SSH and on the host alike. Where Invoke is not
    loaded no command runs through its runner (the cron fast path,
    host/localrun.py), and nothing is imported for it."""
    import sys

    runners = sys.modules.get("invoke.runners")
    if runners is not None:
        runners.Runner.input_sleep = min(runners.Runner.input_sleep, 0.002)


def sudo_failure(stderr: str, argv: Iterable[str], host: Optional[str] = None) -> Optional[SudoError]:
    """If `stderr` says sudo wanted a password, the error that names the
    missing sudoers rule; otherwise None."""
    text = (stderr or "").lower()
    if not any(marker in text for marker in SUDO_PASSWORD_MARKERS):
        return None
    return SudoError(
        f"sudo needs a password for `{join(argv)}`: add a NOPASSWD rule for exactly this "
        f"command (`{program()} setup` installs one under /etc/sudoers.d/)",
        host=host,
    )
