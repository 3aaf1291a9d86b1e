"""The host.yml a deploy installs, and what it keeps of the host's own.

A deploy sends the laptop's resolved settings for the host (deploy.host_yml)
and the host-side run installs them as host.yml (tasks/update.py,
`--install-config`). A laptop whose hosts.yml differs from the one `setup`
used (a colleague's copy, an older checkout, CI's) used to replace the
host's settings silently: its missing `metrics_dir` stopped the textfile
Prometheus reads, its missing `backup` section turned cron's backups into
copies of .env and state alone, each with nothing said.

The rule (docs/hosts.md, "What a deploy keeps"): for the settings setup
acts on, a value the laptop's inventory leaves at its built-in default while
the host has its own is kept, and the run warns once that it was kept; a
value the laptop sets that differs from the host's wins (hosts.yml is the
source of truth), and the run warns once when setup acted on the old one
(the metrics directory, cron's backup line, the repository setup checked),
since only `inv setup` brings those in line. Every other setting is the
laptop's, as before: what a deploy is for.
"""
from __future__ import annotations

import posixpath
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ..inventory import Backup, Host
from ..records import Frozen, frozen

# the settings kept when the laptop's inventory leaves them unset, as key
# paths in a host.yml entry: metrics_dir, the heartbeat (a CI inventory
# that leaves its secret URL out must not silence cron's pings: docs/
# monitor.md, "Heartbeat"), and each key of `backup`
KEPT = ("metrics_dir", "heartbeat") + tuple(f"backup.{k}" for k in Backup().to_dict())
# of those, the ones setup acts on: a change needs `inv setup` (setup.py's
# _metrics_dir; cron.py's backup line; setup's repository check)
SETUP_ACTS_ON = ("metrics_dir", "backup.schedule", "backup.repository")


def _default(key: str) -> Any:
    """A key path's built-in value, as host.yml writes it (None: absent)."""
    if key.startswith("backup."):
        return yaml.safe_load(yaml.safe_dump(Backup().to_dict()))[key.split(".", 1)[1]]
    return None


def _get(entry: dict, key: str) -> Any:
    """A key path's value in a host.yml entry; its built-in one when the
    entry lacks it (an older host.yml without a `backup` key holds the
    defaults, not a setting to keep)."""
    head, _, rest = key.partition(".")
    value = entry.get(head)
    if not rest:
        return value
    return value.get(rest, _default(key)) if isinstance(value, dict) else _default(key)


def _set(entry: dict, key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if not rest:
        entry[head] = value
    else:
        entry.setdefault(head, {})[rest] = value


def _entry(text: Optional[str], name: str) -> Optional[dict]:
    """The host's entry of a host.yml text; None when there is none to
    compare with (no host.yml yet, unreadable, or another host's)."""
    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    entry = ((data or {}).get("hosts") or {}).get(name) if isinstance(data, dict) else None
    return entry if isinstance(entry, dict) else None


def installed(old_text: Optional[str], new_text: str, name: str) -> Tuple[str, List[str]]:
    """(the host.yml to install, the run's warnings): `new_text` (the
    laptop's) with the host's own values kept where the laptop left them
    at the built-in default, and at most two warnings, key names only (a
    repository's URL may hold a password)."""
    old, new = _entry(old_text, name), _entry(new_text, name)
    if old is None or new is None:
        return new_text, []
    kept, changed = [], []
    for key in KEPT:
        was, now = _get(old, key), _get(new, key)
        if was == now:
            continue
        if now == _default(key):
            _set(new, key, was)
            kept.append(key)
        elif key in SETUP_ACTS_ON:
            changed.append(key)
    warnings = []
    where = 'docs/hosts.md, "What a deploy keeps"'
    if kept:
        them = "it" if len(kept) == 1 else "them"
        warnings.append(f"host.yml: kept the host's {', '.join(kept)}: this deploy's inventory leaves {them} "
                        f"unset, and a deploy never drops {them}; set {them} in that hosts.yml too, or drop "
                        f"{them} with `setup -H {name}` ({where})")
    if changed:
        warnings.append(f"host.yml: this deploy's inventory changes the host's {', '.join(changed)}: "
                        f"`setup -H {name}` makes what the new value needs (the metrics directory, cron's "
                        f"backup line, the repository's check) ({where})")
    if not kept:
        return new_text, warnings
    data: Dict[str, Any] = yaml.safe_load(new_text)
    data["hosts"][name] = new
    return yaml.safe_dump(data, sort_keys=False), warnings


@frozen
class Sent(Frozen):
    """A deploy's settings, not installed yet: the host.yml text to write
    (`installed`'s), where, the Host it holds, and the run's warnings about
    it. The run installs it under the lock once the target is trusted
    (host/plan._trusted; docs/security.md, "Verified commits")."""

    text: str
    path: str
    host: Host
    warnings: Tuple[str, ...] = ()


# What names where the app and fabops' files are, and so which
# allowed-signers file a run reads (host/verify.signers_path): on a host
# that requires signed commits only setup changes them (Facts.sent "moved")
PLACES = ("home", "sandbox", "app.path", "app.remote", "app.branch")


def moves(installed: Host, sent: Host) -> Tuple[str, ...]:
    """The PLACES whose value the sent settings change."""
    def value(host: Host, key: str) -> Any:
        head, _, rest = key.partition(".")
        found = getattr(getattr(host, head), rest) if rest else getattr(host, head)
        # `~/app/` names what `~/app` does (App.name)
        return posixpath.normpath(found) if key in ("home", "app.path") else found

    return tuple(key for key in PLACES if value(installed, key) != value(sent, key))
