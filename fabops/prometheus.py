"""`fabops metrics`: a host's metrics in Prometheus' text format, the same
exposition its host-side runs write to node_exporter's textfile collector
(host/prom.py, docs/metrics.md), for a host without node_exporter and for
debugging. One round trip reads state.json and the install marker of the
host's fabops (its version, as the host's own runs report it); nothing is
written. `monitor --prometheus` prints the same families from monitor's
own round trip (its script reads both too: monitor_exposition)."""
from __future__ import annotations

import json
from typing import Dict, Iterable, List, Optional, Tuple

from . import errors
from .host.prom import Family, families, label_value, merged, render
from .install import MARKER
from .inventory import Host
from .probe import MARK, split_sections
from .shell import Cmd, path, sh
from .target import Target


def marker_cmd(host: Host) -> Cmd:
    """The install marker of the host's fabops (its version), read by
    metrics_cmd and by monitor's script with --prometheus."""
    return sh("cat {marker} 2>/dev/null", marker=path(host.paths.venv + "/" + MARKER))


def metrics_cmd(host: Host) -> Cmd:
    """state.json and the venv's install marker, each after its marker line."""
    return sh("echo {s}; cat {state} 2>/dev/null; echo; echo {m}; {marker}",
              s=MARK + "state", state=path(host.paths.state), m=MARK + "marker", marker=marker_cmd(host))


def host_families(c, host: Host, now: Optional[float] = None) -> List[Family]:
    """The host's metric families, read from the host (host/prom.families)."""
    t = Target.of(c, host)
    return found_families(host, split_sections(t.output(metrics_cmd(host))), t.is_local, now)


def found_families(host: Host, found: Dict[str, str], local: bool, now: Optional[float] = None) -> List[Family]:
    """The host's metric families from the `state` and `marker` sections
    one round trip read (metrics_cmd's, or monitor's script): the one path
    both print through. `local`: the host is this machine."""
    import time

    state, build = _object(found.get("state")), _build(_object(found.get("marker")), local)
    return families(host, state, time.time() if now is None else now, build=build)


# monitor --prometheus: whether each host's monitor script answered
# (docs/metrics.md), named as node_exporter's
# node_textfile_scrape_error's and blackbox_exporter's probe_success are:
# the exporter's prefix, then what the gauge says.
ANSWERED = "fabops_monitor_success"


def monitor_exposition(results: Iterable, hosts: Dict[str, Host], outputs: Dict[str, str],
                       now: Optional[float] = None) -> str:
    """`monitor --prometheus`: each answering host's families, read from
    its monitor script's output (`outputs`: host -> the raw output with its
    `state` and `marker` sections), merged as `fabops metrics -H a,b`
    prints them (one HELP and TYPE per family), and ANSWERED for every
    host: 1, or 0 after a comment line that names the host and its exit
    code (`# host web2: unreachable (exit 3)`, `failed` for any other
    error; the error itself is on stderr)."""
    each: List[List[Family]] = []
    answered, said = [], []
    for r in results:
        host = hosts[r.host]
        if r.ok:
            each.append(found_families(host, split_sections(outputs.get(r.host, "")), host.is_local, now))
        else:
            why = "unreachable" if r.code == errors.UNREACHABLE else "failed"
            said.append(f"# host {label_value(r.host)}: {why} (exit {r.code})")
        answered.append(((("fabops_host", r.host),), 1 if r.ok else 0))
    each.append([(ANSWERED, "gauge", "1 when the host answered monitor's script, 0 when it did not.", answered)])
    return "".join(line + "\n" for line in said) + render(merged(each))


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
