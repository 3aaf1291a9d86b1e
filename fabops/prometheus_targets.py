"""`inv prometheus-targets`: Prometheus' file_sd targets from hosts.yml
(docs/metrics.md, "Prometheus: targets from hosts.yml"), so a fleet's
scrape list is the inventory and never drifts from it. fabops grows no
format of its own where one exists (docs/architecture.md, "Real engines
for real jobs"): this is the JSON Prometheus' `file_sd_configs` reads.

Nothing here connects to a host: each address comes from hosts.yml and,
for an ssh host without `node_exporter`, from the SSH config the
connections read (its `HostName` for the host's `address`). The library
returns data; fabops/tasks/inventory.py renders and writes it.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Dict, List, Optional, Tuple

from .errors import CommandFailed, UsageError
from .inventory import Host, Inventory
from .validate import EXPORTER_ADDRESS

PORT = 9100  # node_exporter's own default port
# One file_sd entry: {"targets": [HOST:PORT], "labels": {name: value}}
Group = Dict[str, object]


def ssh_hostname(address: str) -> str:
    """The host `ssh ADDRESS` reaches: its `HostName` in the SSH config the
    connections read (~/.ssh/config, or $FABOPS_SSH_CONFIG's file:
    connection.fabops_config), else ADDRESS itself. A ProxyJump host's
    HostName may be a private address Prometheus cannot reach: such a host
    names its exporter with `node_exporter` (docs/metrics.md)."""
    from fabric import Config  # the laptop's task only, never the cron path

    from .connection import fabops_config

    found = fabops_config(Config, {}).base_ssh_config.lookup(address).get("hostname")
    return str(found or address)


def exporter(host: Host, resolve: Callable[[str], str] = ssh_hostname) -> str:
    """HOST:PORT of `host`'s node_exporter: hosts.yml's `node_exporter`
    (HOST:PORT, HOST, or :PORT), its missing parts from the host itself:
    `localhost` for a `connection: local` host (this machine), else the
    SSH address (`resolve`), and port 9100."""
    m = EXPORTER_ADDRESS.fullmatch(host.node_exporter or "")  # checked at load (validate.node_exporter_problem)
    name = (m.group(1) or m.group(2)) if m else None
    if not name:
        name = "localhost" if host.is_local else resolve(host.address)
    port = int(m.group(3)) if m and m.group(3) else PORT
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


def targets(inv: Inventory, chosen: List[Host], resolve: Callable[[str], str] = ssh_hostname) -> List[Group]:
    """The file_sd entries of the `chosen` hosts, in their order: one per
    node_exporter address, labelled `host`, `groups`, `environment` and
    `environments` (_labels).

    Several apps on one machine (each its own hosts.yml entry, each its own
    textfile: docs/metrics.md) share that machine's node_exporter: it is one
    target, scraped once, whose `host` label names them all, comma-joined;
    their own samples still differ by `fabops_host`. `groups` is written
    as Prometheus writes a list into one label (`__meta_consul_tags`):
    every name between commas, a comma at each end too, so
    `groups=~".*,web,.*"` matches the whole name `web`, never `webhooks`.
    A label with nothing in it is left out (Prometheus reads an empty label
    as no label)."""
    by_address: Dict[str, List[Host]] = {}
    for host in chosen:
        by_address.setdefault(exporter(host, resolve), []).append(host)
    return [{"targets": [address], "labels": _labels(inv, members)} for address, members in by_address.items()]


def _labels(inv: Inventory, members: List[Host]) -> Dict[str, str]:
    names = [h.name for h in members]
    groups = [g for g, hosts in inv.groups.items() if any(n in hosts for n in names)]
    environments = _unique(h.environment for h in members if h.environment)
    labels = {"host": ",".join(names)}
    if groups:
        labels["groups"] = "," + ",".join(groups) + ","
    # One exporter serving staging and production is still one target
    # (scraped twice, every series would be twice): `environment` says one
    # environment only when its hosts agree, never a comma-joined value that
    # `environment="production"` misses (#29's trial); `environments` lists
    # them all as `groups` does, so `environments=~".*,production,.*"`
    # matches every target that serves production, a shared one too
    if len(environments) == 1:
        labels["environment"] = environments[0]
    if environments:
        labels["environments"] = "," + ",".join(environments) + ","
    return labels


def _unique(values) -> List[str]:
    out: List[str] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def document(groups: List[Group]) -> str:
    """The file_sd file's text: a JSON list, one key per line, keys sorted
    (a diff of two runs shows what moved), ending in a line break."""
    return json.dumps(groups, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(path: str, text: str) -> Tuple[str, Optional[str]]:
    """`text` written to `path` atomically (a temp file beside it, then a
    rename: Prometheus re-reads a file_sd file when it changes and must
    never read half of one), mode 0644 so Prometheus' user can read it.
    Returns (the absolute path, the old text or None): a person is told
    whether the targets changed. A directory that is not there is refused,
    not made: one made here would be this user's 0700, unreadable for
    Prometheus."""
    from .host.files import atomic_write

    path = os.path.abspath(os.path.expanduser(path))
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise UsageError(f"--output {path}: no directory {directory} (create it, readable by Prometheus' user)")
    if os.path.isdir(path):
        raise UsageError(f"--output {path}: is a directory; name the file, e.g. {path.rstrip('/')}/fabops.json")
    old = None
    try:
        with open(path, encoding="utf-8") as fh:
            old = fh.read()
    except (OSError, UnicodeDecodeError):
        pass  # no file yet, or one we replace whole anyway
    try:
        atomic_write(path, text, mode=0o644)
    except PermissionError as exc:
        raise UsageError(f"--output {path}: cannot write in {directory}: {exc.strerror}") from None
    except OSError as exc:
        raise CommandFailed(f"writing {path} failed: {exc.strerror or exc}") from None
    return path, old
