"""`fabops metrics`: a host's metrics in Prometheus' text format, the same
exposition its host-side runs write to node_exporter's textfile collector
(host/prom.py, docs/metrics.md), for a host without node_exporter and for
debugging. One round trip reads state.json and the install marker of the
host's fabops (its version, as the host's own runs report it); nothing is
written."""
from __future__ import annotations

import json
from typing import List, Optional, Tuple

from .host.prom import Family, families
from .install import MARKER
from .inventory import Host
from .probe import MARK, split_sections
from .shell import Cmd, path, sh
from .target import Target


def metrics_cmd(host: Host) -> Cmd:
    """state.json and the venv's install marker, each after its marker line."""
    return sh("echo {s}; cat {state} 2>/dev/null; echo; echo {m}; cat {marker} 2>/dev/null",
              s=MARK + "state", state=path(host.paths.state), m=MARK + "marker",
              marker=path(host.paths.venv + "/" + MARKER))


def host_families(c, host: Host, now: Optional[float] = None) -> List[Family]:
    """The host's metric families, read from the host (host/prom.families)."""
    import time

    t = Target.of(c, host)
    found = split_sections(t.output(metrics_cmd(host)))
    state, build = _object(found.get("state")), _build(_object(found.get("marker")), t.is_local)
    return families(host, state, time.time() if now is None else now, build=build)


def _object(text: Optional[str]) -> dict:
    try:
        data = json.loads(text or "")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _build(marker: dict, local: bool) -> Optional[Tuple[str, str]]:
    """(version, python) of the host's fabops: its install marker's; on this
    machine with none (a sandbox runs this very fabops), None: this
    process's own, as its runs write it; over SSH with none, ("", ""): no
    fabops is installed there."""
    if marker.get("version"):
        return str(marker["version"]), str(marker.get("python") or "")
    return None if local else ("", "")
