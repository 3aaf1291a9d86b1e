"""Pure validators for values that end up in shell commands.

Everything here is a pure function (no I/O), shared by the inventory loader,
flag parsing and the host side. Validation is the first line of defence;
`shlex.quote` at every interpolation is the second (docs/architecture.md, "Security defaults").
"""
from __future__ import annotations

import base64
import re
from typing import Callable, Dict, Optional, Tuple

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


def cron_values(field: str, i: int) -> Optional[set]:
    """The values field `i` of a cron expression matches (cron_problem's
    ranges and names; a weekday 7 is Sunday, 0); None when it cannot be
    read. monitor.cron_gaps steps a schedule with them."""
    lo, hi = _CRON_RANGES[i]
    out: set = set()
    try:
        for item in field.split(","):
            base, _, step = item.partition("/")
            bounds = [int(_CRON_NAMES[i].get(b.lower(), b)) for b in base.split("-", 1)] if base != "*" else [lo, hi]
            end = bounds[-1] if len(bounds) > 1 or not step else hi
            out.update(range(bounds[0], end + 1, int(step) if step else 1))
    except ValueError:
        return None
    return {0 if (i == 4 and v == 7) else v for v in out}

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
    return _path_problem(path) or _components_problem(path) or _path_chars_problem(path)


def _components_problem(path: str) -> str | None:
    """A host path names one place, written one way: no `.` or `..`
    component and no `//`. `~/app/.` is `~/app`, but its last component
    is `.`, and the app's name (App.name) is that last component: the
    root-owned allowed-signers file /etc/fabops/<name>/ would become
    /etc/fabops/./, which setup never writes, and commits would ship
    unchecked (docs/security.md, "Verified commits"). One trailing `/`
    is kept: it names the same directory and the same last component."""
    parts = path.split("/")
    inner = parts[1:-1] if path.endswith("/") else parts[1:]
    first = parts[0]
    if first in (".", "..") or any(part in ("", ".", "..") for part in inner):
        return "must not have a '.', '..' or empty ('//') component"
    return None


# ------------------------------------------------------------------ hosts.yml values


# C0 controls and DEL. A line break in a value read by systemd (a unit),
# sudo (the drop-in) or cron (the crontab) starts a new directive there,
# whatever the shell quoting says (docs/security.md, "One line, printable"),
# so no inventory value, in any section, may hold one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def control_problem(text: str) -> str | None:
    """Why `text` may not be an inventory value or key: the first control
    character, named (a tab or a line break is invisible in an error)."""
    m = _CONTROL.search(text)
    if m is None:
        return None
    names = {"\n": "a line break (LF)", "\r": "a carriage return (CR)", "\t": "a tab", "\x00": "a NUL byte",
             "\x1b": "an escape (ESC)"}
    ch = m.group()
    hint = ""
    if ch == "\n" and m.start() == len(text) - 1:
        hint = " (a YAML block scalar, `>` or `|`, ends with a line break: write `>-` or `|-`, or one line)"
    return (f"contains {names.get(ch, f'the control character U+{ord(ch):04X}')} at position {m.start() + 1}: "
            f"every value is one line of printable text{hint}")


# Lifecycle hooks (docs/pipeline.md, "Hooks"): shell code the operator
# writes in hosts.yml, run as the deploy user in the app directory. A
# script is several lines by nature, so its value may hold line breaks and
# tabs, and nothing else below U+0020: a CR, an escape or a NUL is refused
# as in every other value. It never reaches a unit, the sudoers drop-in or
# the crontab (a file in fabops' home holds it: host/hooks.py), which is why
# the one-line rule is relaxed for it alone.
HOOKS = ("before_restart", "after_deploy", "on_rollback", "on_failure")
DEFAULT_HOOK_TIMEOUT = 60.0
HOOK_TIMEOUT_MAX = 3600.0  # a hook holds the host lock while it runs
HOOK_MAX_BYTES = 16384
_SCRIPT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def script_problem(text: str) -> str | None:
    """Why `text` may not be a hook's script: a control character other
    than a line break or a tab (named as control_problem names it), more
    than HOOK_MAX_BYTES, or nothing but blanks."""
    m = _SCRIPT_CONTROL.search(text)
    if m is not None:
        named = control_problem(m.group()) or ""
        return (named.split(" at position")[0] + f" at position {m.start() + 1}: a hook is lines of printable "
                "text (line breaks and tabs allowed)")
    if len(text.encode("utf-8")) > HOOK_MAX_BYTES:
        return f"is {len(text.encode('utf-8'))} bytes: a hook's script is at most {HOOK_MAX_BYTES} (run a file " \
               "from the repository for more)"
    if not text.strip():
        return "is empty: write the shell code, or `off`"
    return None


_EXPANSIONS = re.compile(r"\$\{?(PATH|HOME|USER)\b|(^|:)~/")


def env_value_problem(value: str) -> str | None:
    """An inventory env value is literal everywhere (the host's cron, SSH):
    a `$PATH` or `~/` in it would be taken as those characters, so a PATH
    written to extend itself would silently break every command."""
    if _EXPANSIONS.search(value):
        return "is not expanded (env values are literal): write the whole value, e.g. /usr/local/bin:/usr/bin:/bin"
    return None


def host_name_problem(name: str) -> str | None:
    if not name or name.startswith("-") or any(c in name for c in " ,\t\n/\\'\"$`;&|<>(){}*?"):
        return "is not a valid host or group name (no spaces, commas, slashes or shell characters)"
    return None


def address_problem(addr: str) -> str | None:
    if not addr or addr.startswith("-") or any(c.isspace() or c in "'\"$`;&|<>(){}*?\\," for c in addr):
        return "is not a valid host address"
    return None


# hosts.yml's `node_exporter` (docs/metrics.md, "Prometheus: targets from
# hosts.yml"): HOST:PORT, HOST (port 9100) or :PORT (the host's own address);
# an IPv6 HOST in brackets. Only what a scrape target can be: Prometheus
# reads it as host:port, so a scheme, a path or a user would be a target
# that never answers.
EXPORTER_ADDRESS = re.compile(r"(?:([A-Za-z0-9._-]+)|\[([0-9A-Fa-f:.]+)\])?(?::([0-9]{1,5}))?")


def node_exporter_problem(value: str) -> str | None:
    m = EXPORTER_ADDRESS.fullmatch(value)
    if not m or not value or value == ":" or (m.group(1) or "").startswith(("-", ".")):
        return "is not a node_exporter address: write HOST:PORT, HOST (port 9100) or :PORT (this host's address)"
    if (m.group(1) or "").isdigit():  # `node_exporter: 9100` reads as a host named 9100
        return "is a number, not an address: write :PORT for this host's address at that port"
    if m.group(3) is not None and not 1 <= int(m.group(3)) <= 65535:
        return "has a port outside 1-65535"
    return None


def branch_problem(ref: str) -> str | None:
    problem = ref_problem(ref)
    return f"is not a valid branch name: {problem}" if problem else None


def remote_problem(remote: str) -> str | None:
    problem = ref_problem(remote)
    if problem or "/" in remote:
        return f"is not a valid git remote name{': ' + problem if problem else ''}"
    return None


def url_problem(url: str) -> str | None:
    if url.startswith("-") or any(c.isspace() for c in url):
        return "is not a valid URL"
    return None


# The logs setup creates for the deploy user: only under /var/log (at most
# one directory deep) or that user's home, so a hosts.yml value can never
# make setup hand a file root owns (/etc/shadow) to that user
# (docs/security.md, "Log files").
SETUP_LOGS = ("update", "health")


def setup_log_problem(path: str) -> str | None:
    if path.startswith("~/"):
        return None
    parts = path.split("/")
    if path.startswith("/var/log/") and len(parts) in (4, 5) and all(parts[3:]):
        return None
    return ("must be under /var/log/ (at most one directory deep, e.g. /var/log/bot/update.log) or ~/: "
            "setup creates it for the deploy user")


# node_exporter's textfile-collector directories: Debian's package reads
# the first (its --collector.textfile.directory), the upstream docs' examples
# use the second. setup makes a metrics_dir outside ~/ as root and gives it
# to the deploy user, so only these (or one directory under one of them)
# may be named: anywhere else (/etc/systemd/system-generators, a unit's .d
# directory, /root) the deploy user would own a directory root reads code
# or settings from (docs/security.md, "The metrics directory").
TEXTFILE_DIRS = ("/var/lib/prometheus/node-exporter", "/var/lib/node_exporter/textfile_collector")


def metrics_dir_problem(path: str) -> str | None:
    """Why setup may not make `path` (hosts.yml's metrics_dir) for the
    deploy user: None for ~/... or a textfile-collector place."""
    parts = path.split("/")
    whole = all(p not in ("", ".", "..") for p in parts[1:])  # no //, /./ or /../: the path as written is the one made
    if path.startswith("~/") and whole:
        return None
    if path.startswith("/") and whole:
        for top in TEXTFILE_DIRS:
            depth = len(top.split("/"))
            if parts[:depth] == top.split("/") and len(parts) <= depth + 1:
                return None
    return (f"must be under ~/ or be node_exporter's textfile directory, {TEXTFILE_DIRS[0]} (Debian's) or "
            f"{TEXTFILE_DIRS[1]}, or one directory under one of them: setup makes it as root for the deploy "
            "user, so it may be nowhere root reads programs or settings from")


def check_url_problem(url: str) -> str | None:
    if not url.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL (the check is an HTTP request)"
    return url_problem(url)


def heartbeat_url_problem(url: str) -> str | None:
    """hosts.yml's heartbeat URLs (docs/monitor.md, "Heartbeat"): pinged
    by the HTTP check's request (host/httpcheck.request), http or https."""
    if not url.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL (the heartbeat is an HTTP request)"
    return url_problem(url)


# Verified commits (docs/security.md, "Verified commits"): the public keys
# whose SSH signature a target commit must carry. setup writes them into a
# root-owned allowed-signers file that `git verify-commit` reads with
# ssh-keygen, one key a line: the key's type, its base64 and an
# optional comment, as a `.pub` file holds it (ssh-keygen -Y's format).
SIGNER_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
                "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
_SIGNER_KEY = re.compile(r"[A-Za-z0-9+/]{16,}={0,3}")


def signer_problem(text: str) -> str | None:
    """One `verify.signers` entry: `TYPE BASE64 [comment]`, a `.pub` line,
    or `openpgp BASE64 [comment]`, one OpenPGP public key as `gpg --export`
    writes it, base64 on one line (host/verify.py, OPENPGP)."""
    parts = text.split(None, 2)
    if parts[:1] == ["openpgp"]:
        return openpgp_signer_problem(parts[1] if len(parts) > 1 else "")
    if len(parts) < 2 or parts[0] not in SIGNER_TYPES:
        return ("must be an SSH public key as a .pub file holds it (`ssh-ed25519 AAAA... alice@example`); "
                f"key types: {', '.join(SIGNER_TYPES[:5])}; or an OpenPGP key, `openpgp BASE64 [comment]` "
                "(`gpg --export KEYID | base64 -w0`)")
    if not _SIGNER_KEY.fullmatch(parts[1]):
        return "has no base64 key after its type (`ssh-ed25519 AAAA...`)"
    return None


def openpgp_signer_problem(blob: str) -> str | None:
    """An OpenPGP signer's base64: one public key (one primary key packet,
    version 4), never a secret key (gpg --export-secret-keys)."""
    import binascii

    from .host.verify import openpgp_fingerprints, openpgp_packets

    usage = "(`openpgp BASE64 [comment]`, BASE64 from `gpg --export KEYID | base64 -w0`)"
    try:
        data = base64.b64decode(blob, validate=True)
        tags = [tag for tag, _ in openpgp_packets(data)]
        found = openpgp_fingerprints(data)
    except (binascii.Error, ValueError) as exc:
        return f"is not an OpenPGP public key {usage}: {exc}"
    if 5 in tags or 7 in tags:
        return "is an OpenPGP SECRET key: list the public key only (gpg --export, never --export-secret-keys)"
    if len(found) != 1:
        return f"must hold exactly one OpenPGP public key, not {len(found)} {usage}"
    return None


def header_problem(text: str) -> str | None:
    if any(c in text for c in "\r\n\x00"):
        return "must not contain a line break"
    return None


def glob_problem(glob: str) -> str | None:
    if not glob or "/" in glob or glob.startswith("-") or "\n" in glob:
        return "must be a file name pattern like *.pcm (no '/', no leading '-')"
    return None


# A backup item's name (a `dump`'s): it names a file in the snapshot
# (dump-<name>.out), so a file name of a safe alphabet, never a path.
_ITEM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def item_name_problem(name: str) -> str | None:
    if not _ITEM_NAME.fullmatch(name) or ".." in name:
        return "must be a name of letters, digits and _ . - (at most 64, no '..'): it names the item's file"
    return None


def exclude_problem(glob: str) -> str | None:
    """A backup's exclude pattern, matched in Python (fnmatch) against each
    file's name and its path in the archive; never given to a shell."""
    if not glob.strip() or glob.startswith("-"):
        return "must be a pattern like *.log or cache/* (not empty, no leading '-')"
    return None


# restic's repository forms (a path, sftp:user@host:/path, rest:https://...,
# s3:...): one word, no character a shell or an option parser would read.
_REPOSITORY_BAD = frozenset(" \t'\"$`;|<>(){}\\!*[]")


def repository_url_problem(url: str) -> str | None:
    if url.startswith("-"):
        return "must not start with '-'"
    # The characters are named only outside the password: a message never
    # shows a URL's password, not even in part (docs/backups.md). Imported
    # here: cron's lines load this module on every poll.
    from .redact import redacted_url

    outside = redacted_url(url, mask="")
    bad = sorted({c for c in outside if c in _REPOSITORY_BAD})
    if bad:
        return f"is not a repository URL (like sftp:user@host:/srv/restic): {' '.join(repr(c) for c in bad)} refused"
    if outside != url and _password_unsafe(url):
        # restic's URL parser would stop at it and print the password's
        # first part in its error ('invalid port ":sec"')
        return ("is not a repository URL: its password holds a character that must be percent-encoded "
                "(a space, / ? # or a character a shell would read); percent-encode it (%2F for /, %24 for $)")
    return None


def _password_unsafe(url: str) -> bool:
    """Whether the password would not survive restic's URL parser, which
    ends the authority at the first `/` (redact.userinfo_of: not whole)
    and reads `?`, `#`, a space or a shell character as the URL's."""
    from .redact import userinfo_of

    userinfo, whole = userinfo_of(url)
    if userinfo is None:
        return False
    return not whole or any(c in _REPOSITORY_BAD or c in "?#" or c.isspace() for c in userinfo.partition(":")[2])


# ------------------------------------------------------------------ the hosts.yml schema

DEFAULT_THRESHOLDS = {"cpu": 10.0, "memory": 15.0, "disk": 80.0}
# The legacy guide's cadence: update every 5 min, health every 10, daily
# cleanup, and the planned automatic .env backups weekly.
DEFAULT_SCHEDULE = {
    "update": "*/5 * * * *",
    "health": "*/10 * * * *",
    "clean": "@daily",
    "backup-env": "@weekly",
}
# Backups (docs/backups.md): daily, with restic's --keep-daily/weekly/monthly
# counts for the local snapshots.
DEFAULT_BACKUP_SCHEDULE = "@daily"
DEFAULT_KEEP = {"daily": 7, "weekly": 4, "monthly": 6}
LOG_KEYS = ("update", "health", "app")
HTTP_METHODS = ("GET", "POST", "HEAD", "PUT")


class Key:
    """How one hosts.yml key is read. `kind` names the reader, a method of
    the inventory's validator: a scalar (string, integer, number, choice,
    duration, boolean, strlist, any) checked with `check`, `bounds` or
    `options`, or a section with its own reader (app, env, services, ...).
    `required` keys stop their section when missing or wrong; `off` keys
    read None, `off` or false as "disabled". An empty value (null) is the
    default, as if the key were not there; with `blank`, so is ""."""

    # A plain class, not a dataclass: this module is on the cron path, and
    # building a dataclass costs more at import than all of SCHEMA does.
    __slots__ = ("kind", "check", "bounds", "options", "required", "off", "blank")

    def __init__(self, kind: str, check: Optional[Callable[[str], Optional[str]]] = None,
                 bounds: Tuple[float, float] = (0, 0), options: Tuple[str, ...] = (), required: bool = False,
                 off: bool = False, blank: bool = False):
        self.kind, self.check, self.bounds, self.options = kind, check, bounds, options
        self.required, self.off, self.blank = required, off, blank


_HOSTPATH = Key("string", hostpath_problem)
_DURATION_KEY = Key("duration")

# Every key hosts.yml accepts, section by section: the validator reads with
# this table and docs/hosts.md is checked against it (fabops/docgen.py), so
# a key cannot be accepted without being documented, or the reverse
# (docs/architecture.md, "The hosts.yml schema").
SCHEMA: Dict[str, Dict[str, Key]] = {
    "top": {
        "defaults": Key("host_fields"),
        "hosts": Key("hosts", required=True),
        "groups": Key("groups"),
        # which group wins where two set a key differently (docs/hosts.md, "Groups")
        "group_order": Key("strlist", host_name_problem),
        "default": Key("string"),
        "known_hosts": Key("string"),
    },
    "host": {
        "address": Key("string", address_problem),
        "user": Key("string", user_problem),
        "setup_user": Key("string", user_problem),
        "port": Key("integer", bounds=(1, 65535)),
        "connection": Key("choice", options=("ssh", "local")),
        "sandbox": Key("boolean"),
        "identity_file": Key("string"),
        "app": Key("app"),
        "env": Key("env"),
        "services": Key("services"),
        "deps": Key("deps"),
        "logs": Key("logs"),
        "thresholds": Key("thresholds"),
        "cleanup": Key("cleanup"),
        "schedule": Key("schedule"),
        "env_file": Key("string", relpath_problem),
        "env_template": Key("string", relpath_problem),
        "backup_dir": _HOSTPATH,
        "home": _HOSTPATH,
        "metrics_dir": _HOSTPATH,  # node_exporter's textfile collector (docs/metrics.md)
        "node_exporter": Key("string", node_exporter_problem),  # a scrape target: prometheus-targets
        "setup_command": Key("string"),
        "promote_after": _DURATION_KEY,  # docs/environments.md, "Promote"
        "backup": Key("backup"),
        "hooks": Key("hooks"),  # lifecycle hooks: shell code (docs/pipeline.md, "Hooks")
        "heartbeat": Key("heartbeat"),  # cron's dead-man's switch (docs/monitor.md, "Heartbeat")
        "verify": Key("verify"),  # only commits signed by these keys ship (docs/security.md, "Verified commits")
    },
    "app": {
        "path": _HOSTPATH,
        "remote": Key("string", remote_problem),
        "branch": Key("string", branch_problem),
        "url": Key("string", url_problem),
    },
    "services[]": {
        "name": Key("string", unit_problem, required=True),
        "manager": Key("choice", options=("systemd", "process"), blank=True),
        "command": Key("string"),
        "workdir": Key("string", relpath_problem),
        "port": Key("integer", bounds=(1, 65535)),
        "paths": Key("strlist", repo_path_problem),
        "check": Key("check"),
        "timeout": _DURATION_KEY,
        "settle": _DURATION_KEY,
        "watch": _DURATION_KEY,
        "unit": Key("boolean"),
    },
    "check": {
        "url": Key("string", check_url_problem, required=True),
        "method": Key("method", options=HTTP_METHODS),
        "body": Key("string"),
        "json": Key("any"),
        "headers": Key("headers"),
        "expect": Key("integer", bounds=(100, 599)),
        "timeout": _DURATION_KEY,
        "fail_count": Key("integer", bounds=(1, 1000)),
        "fail_window": _DURATION_KEY,
    },
    "deps[]": {
        "when": Key("strlist", repo_path_problem, required=True),
        "run": Key("string", required=True),
        "cwd": Key("string", relpath_problem, blank=True),
    },
    "cleanup[]": {
        "path": Key("string", hostpath_problem, required=True),
        "glob": Key("string", glob_problem, required=True),
        "older_than": Key("duration", required=True),
    },
    "logs": {k: _HOSTPATH for k in LOG_KEYS},
    "thresholds": {k: Key("number", bounds=(0, 100)) for k in DEFAULT_THRESHOLDS},
    "schedule": {k: Key("string", cron_problem, off=True) for k in DEFAULT_SCHEDULE},
    "backup": {
        "files": Key("strlist", hostpath_problem),
        "exclude": Key("strlist", exclude_problem),
        "sqlite": Key("strlist", hostpath_problem),
        "dump": Key("dump"),
        "schedule": Key("string", cron_problem, off=True),
        "keep": Key("keep"),
        "repository": Key("repository"),
        "repository_keep": Key("keep"),  # restic forget's counts, each at least keep's (inventory.repository_keep)
    },
    "dump[]": {
        "name": Key("string", item_name_problem, required=True),
        "command": Key("string", required=True),
    },
    "keep": {k: Key("integer", bounds=(0, 1000)) for k in DEFAULT_KEEP},
    "repository": {
        "url": Key("string", repository_url_problem, required=True),
        "password_file": Key("string", hostpath_problem, required=True),
    },
    # url: off turns a heartbeat that defaults or a group set off for one host
    "heartbeat": {
        "url": Key("string", heartbeat_url_problem, off=True),
        "fail_url": Key("string", heartbeat_url_problem),
        "timeout": _DURATION_KEY,
    },
    # each hook: its script alone, or {run, timeout}; `off` turns one that
    # defaults or a group set off for one host
    "hooks": {name: Key("hook", off=True) for name in HOOKS},
    "hook": {
        "run": Key("script", required=True),
        "timeout": _DURATION_KEY,
    },
    "verify": {
        "signers": Key("strlist", signer_problem, required=True),
    },
}
# A group written as a mapping (docs/hosts.md, "Groups"): its members, and
# any per-host key but the one that names a single machine. Its values are
# read with the host's own Keys, so they pass the same checks.
GROUP_REFUSED = {"address": "names one machine; set it on each host"}
SCHEMA["group"] = {"hosts": Key("strlist", host_name_problem, required=True),
                   "environment": Key("boolean"),  # an environment: staging, production (docs/environments.md)
                   **{k: v for k, v in SCHEMA["host"].items() if k not in GROUP_REFUSED}}
