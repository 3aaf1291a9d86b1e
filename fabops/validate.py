"""Pure validators for values that end up in shell commands.

Everything here is a pure function (no I/O), shared by the inventory loader,
flag parsing and the host side. Validation is the first line of defence;
`shlex.quote` at every interpolation is the second (docs/architecture.md, "Security defaults").
"""
from __future__ import annotations

import re

_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
# Legal to git, refused by us as defence in depth: no ref we deploy needs them.
SHELL_META = "$`;&|<>()'\"!{}"


def ref_problem(ref: str) -> str | None:
    """Return why `ref` is not a valid branch/ref name, or None if it is.

    Mirrors `git check-ref-format --allow-onelevel` (tested against real git),
    and also refuses a leading '-' (so a ref can never be read as an option)
    and shell metacharacters (quoting protects us; this is the second wall).
    """
    if not ref:
        return "is empty"
    if ref.startswith("-"):
        return "must not start with '-'"
    if ref == "@":
        return "must not be '@'"
    if _REF_FORBIDDEN.search(ref):
        return "contains a space, control character or one of ~ ^ : ? * [ \\"
    if ".." in ref:
        return "contains '..'"
    if any(ch in SHELL_META for ch in ref):
        return "contains a shell metacharacter"
    if "@{" in ref:
        return "contains '@{'"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        return "has an empty path component"
    if ref.endswith("."):
        return "ends with '.'"
    for part in ref.split("/"):
        if part.startswith("."):
            return "has a component starting with '.'"
        if part.endswith(".lock"):
            return "has a component ending with '.lock'"
    return None


# systemd unit names, and our process-manager service names, are a safe
# alphabet: no shell metacharacters can ever appear in one.
_UNIT = re.compile(r"^[A-Za-z0-9_.:@\\-]+$")


def unit_problem(name: str) -> str | None:
    if not name:
        return "is empty"
    if name.startswith("-"):
        return "must not start with '-'"
    if len(name) > 255:
        return "is longer than 255 characters"
    if not _UNIT.match(name) or "\\" in name:
        return "may only contain letters, digits and _ . : @ -"
    return None


_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_key_problem(key: str) -> str | None:
    if not _ENV_KEY.match(key):
        return "is not a valid environment variable name"
    return None


_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")


def user_problem(user: str) -> str | None:
    if not _USER.match(user):
        return "is not a valid user name"
    return None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value) -> float:
    """'1d' -> 86400.0; '90s', '15m', '2h', '1w', '250ms' or a bare number of seconds.

    Raises ValueError with a readable reason.
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration like 30s, 15m, 2h or 1d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("must be a duration like 30s, 15m, 2h or 1d")
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a duration like 30s, 15m, 2h or 1d")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2) or "s"]


_CRON_NICKNAMES = {"@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*,/-]+$")
_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_CRON_NAMES = [
    {},
    {},
    {},
    {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
]


def cron_problem(expr: str) -> str | None:
    """Return why `expr` is not a 5-field cron schedule or @nickname, or None.

    '%' and newlines are refused: in a crontab they would end the command.
    """
    if not isinstance(expr, str) or not expr.strip():
        return "is empty"
    expr = expr.strip()
    if expr.startswith("@"):
        return None if expr in _CRON_NICKNAMES else f"unknown nickname {expr!r}"
    fields = expr.split()
    if len(fields) != 5:
        return f"needs 5 fields (minute hour day month weekday), got {len(fields)}"
    for i, field in enumerate(fields):
        if not _CRON_FIELD.match(field):
            return f"field {i + 1} ({field!r}) has characters cron does not accept"
        lo, hi = _CRON_RANGES[i]
        for item in field.split(","):
            base, _, step = item.partition("/")
            if step and not step.isdigit():
                return f"field {i + 1}: bad step {step!r}"
            if base == "*":
                continue
            for bound in base.split("-", 1):
                low = bound.lower()
                if low in _CRON_NAMES[i]:
                    continue
                if not bound.isdigit() or not lo <= int(bound) <= hi:
                    return f"field {i + 1}: {bound!r} is outside {lo}-{hi}"
    return None


# What a path in hosts.yml may hold: letters, digits and . _ - / + @ , =
# (docs/hosts.md). Everything else ($, backquotes, quotes, ; | & < >,
# spaces, globs, backslashes, %, which cron reads as a newline) is refused.
# Every path is still quoted wherever it reaches a shell: validation is the
# first wall, quoting the second (docs/security.md).
_PATH_PUNCT = frozenset("._-/+@,=")


def _path_chars_problem(path: str) -> str | None:
    body = path[2:] if path.startswith("~/") else path
    bad = sorted({c for c in body if not (c.isalnum() or c in _PATH_PUNCT)})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        return f"may hold letters, digits and . _ - / + @ , = only, not {shown}"
    return None


def _path_problem(path: str) -> str | None:
    if not path:
        return "is empty"
    if path.startswith("-"):
        return "must not start with '-'"
    if any(part == ".." for part in path.split("/")):
        return "must not contain '..'"
    return None


def repo_path_problem(path: str) -> str | None:
    """A file or folder named in the app's repository (`paths`, `when`):
    relative, no '..'; matched in Python only, so any other character goes."""
    if path.startswith("/"):
        return "must be relative to the app directory"
    if "\n" in path or "\x00" in path:
        return "must not contain a newline or NUL"
    return _path_problem(path)


def relpath_problem(path: str) -> str | None:
    """A path inside the app checkout that commands use (env_file,
    env_template, workdir, cwd): relative, no '..', safe characters."""
    return repo_path_problem(path) or _path_chars_problem(path)


def hostpath_problem(path: str) -> str | None:
    """A path on the host (app.path, home, backup_dir, logs.*, cleanup.path):
    safe characters, no '..'. Whether it must be absolute depends on the
    connection and is decided with it (relative is for `connection: local`)."""
    if path == "~":
        return None
    if path.startswith("~") and not path.startswith("~/"):
        return "may start with ~/ (this user's home), not ~user"
    return _path_problem(path) or _path_chars_problem(path)
