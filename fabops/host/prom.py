"""The host's metrics in Prometheus' text exposition format
(docs/metrics.md): written after every host-side run into node_exporter's
textfile-collector directory (hosts.yml's `metrics_dir`), and printed by
`fabops metrics`.

Everything comes from what the host already keeps: state.json (the
deployed commit, the pin, the bad targets, the restart budget, what cron
cannot deploy) and its `metrics` key, which this module writes under
state.json's lock (host/state.merge_state_file's `fold`): the runs
counted by trigger and result (so a `_total` counter survives restarts
and reinstalls), each trigger's last run, the last successful update check
and each service's last health check. Nothing here holds a secret: the
deployed commit's subject is the one label a person wrote.

The format is Prometheus' own, written here rather than with
prometheus_client: that library's import cost about 78 ms and pulled in
http.server, ssl, email and tempfile on every cron poll, where this
module costs well under a millisecond (docs/dependencies.md, "Metrics:
Prometheus' text format, written by fabops"). Standard library only: the
cron path, Python 3.9.
"""
from __future__ import annotations

import os
import re
import sys
import time
from typing import Dict, Iterable, List, Optional, Tuple

from ..inventory import Host
from ..paths import HostPaths
from ..printable import printable
from .files import append_line

KEY = "metrics"  # state.json's key for what this module keeps
SUBJECT_MAX = 120  # a label, not a log: the subject's first characters
# A sample: its labels (name -> value, in order) and its value
Sample = Tuple[Tuple[Tuple[str, str], ...], float]
# A metric family: name, type, help, samples
Family = Tuple[str, str, str, List[Sample]]
# What this process found malformed in state.json's `metrics` (a
# hand-edited counter that is no number): left out, and said once in the
# update log with the textfile's own failures (written). One run per process.
IGNORED: List[str] = []


# ------------------------------------------------------------ what is kept

def counted(kept: dict, trigger: str, result: str, code: int, seconds: float, now: float) -> None:
    """`kept` (state.json's `metrics`) after one run ended `result`: its
    counter by (trigger, result) one up, its trigger's last run replaced,
    and an update check that converged (a no-op or a deploy: the host is
    on what it follows or pinned to) noted as the last successful one."""
    runs = kept.get("runs") if isinstance(kept.get("runs"), dict) else {}
    key = f"{trigger} {result}"
    runs[key] = whole(runs.get(key), f"runs[{key!r}]") + 1
    last = kept.get("last") if isinstance(kept.get("last"), dict) else {}
    last[trigger] = {"at": now, "result": result, "code": code, "seconds": round(seconds, 3)}
    kept.update(runs=runs, last=last)
    if result in ("noop", "deployed") and trigger not in ("restart", "health"):
        kept["checked_ok"] = now


def whole(value: object, what: str) -> int:
    """A kept counter's value; a malformed one (a hand-edited list, text)
    counts again from 0, noted in IGNORED: a counter reset is what
    Prometheus copes with, a run that fails for its metrics is not."""
    if value is None:
        return 0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    IGNORED.append(what)
    return 0


def folding(change, host: Optional[Host] = None, out: Optional[dict] = None):
    """A fold of the whole state (host/state.merge_state_file's `fold`)
    that applies `change(kept)` to its `metrics` key. It never raises: the
    fold rides on the run's own state save (Recorder.settle), which a
    malformed `metrics` key must not stop (docs/metrics.md, "When a write
    fails"); what it could not change is noted in IGNORED.

    With `host`, the textfile is written here too, under state.json's
    lock: two runs (cron's update and health in the same minute) then
    write it in the order they counted, and fabops_runs_total never goes
    backwards (Prometheus would read a counter reset). `out` gets the
    write's failure and the one kept before (said outside the lock: said)."""
    def fold(state: dict) -> None:
        kept = state.get(KEY) if isinstance(state.get(KEY), dict) else {}
        try:
            change(kept)
        except Exception as exc:  # any malformed value: the run's result stands
            IGNORED.append(f"{type(exc).__name__}: {exc}")
        state[KEY] = kept
        if host is not None:
            failed = rendered(host, HostPaths.for_home(host.home), state)
            if out is not None:
                out.update(failed=failed, before=kept.get("failed"))
            kept["failed"] = failed

    return fold


def note(paths: HostPaths, change, host: Optional[Host] = None, out: Optional[dict] = None) -> dict:
    """state.json after `change(kept)` changed its `metrics` under the
    file's lock, so two runs (a deploy, cron's health) never lose a count;
    with `host`, the textfile written under the same lock (folding)."""
    from .state import merge_state_file

    return merge_state_file(paths.state, {}, fold=folding(change, host, out))[1]


def run_counted(trigger: str, result: str, code: int, seconds: float,
                host: Optional[Host] = None, out: Optional[dict] = None):
    """The fold a pipeline run's own last state save carries
    (Recorder.settle): its count in the same write, so a cron poll makes
    no second fsynced write of state.json for its metrics
    (docs/dependencies.md); with `host`, the textfile too (folding)."""
    now = time.time()
    return folding(lambda kept: counted(kept, trigger, result, code, seconds, now), host, out)


# ------------------------------------------------------------ the exposition

def label_value(value: object) -> str:
    """A label's value as the text format writes it: backslash, double
    quote and line feed escaped; any other control or invisible character
    shown as U+FFFD (printable), so `fabops metrics` on a terminal is safe."""
    text = printable(value, lines=True)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(families: Iterable[Family]) -> str:
    """The text exposition: per family its HELP and TYPE lines, then its
    samples; a family with no samples is left out."""
    out: List[str] = []
    for name, kind, help_text, samples in families:
        if not samples:
            continue
        out.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2)}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                IGNORED.append(f"{name}: {value!r:.40}")  # a hand-edited value: left out (written says it)
                continue
            inner = ",".join(f'{k}="{label_value(v)}"' for k, v in labels)
            out.append(f"{name}{{{inner}}} {number(value)}")
    return "\n".join(out) + "\n" if out else ""


def number(value: float) -> str:
    """A sample's value: whole numbers without a fraction."""
    if isinstance(value, bool) or float(value).is_integer() and abs(value) < 2 ** 53:
        return str(int(value))
    return repr(float(value))


def exposition(host: Host, state: dict, now: Optional[float] = None) -> str:
    """The host's metrics, rendered, from its state.json (`state`)."""
    return render(families(host, state, time.time() if now is None else now))


def merged(each: Iterable[List[Family]]) -> List[Family]:
    """Several hosts' families as one exposition has them: each name once,
    with every host's samples (`fabops metrics -H a,b`)."""
    out: Dict[str, Family] = {}
    for fams in each:
        for name, kind, help_text, samples in fams:
            out.setdefault(name, (name, kind, help_text, []))[3].extend(samples)
    return list(out.values())


def families(host: Host, state: dict, now: float, build: Optional[Tuple[str, str]] = None) -> List[Family]:
    """Every metric family, each sample labelled with the inventory's name
    for the host (`fabops_host`: one machine may run several apps, each
    with a file of its own in the same directory). `build`: the host's
    fabops (version, python) when it is not this process (read over SSH;
    empty: none installed, no build info)."""
    from .. import __version__

    me = (("fabops_host", host.name),)
    kept = state.get(KEY) if isinstance(state.get(KEY), dict) else {}
    # Python as major.minor, the form the install marker keeps (install.py):
    # a host's textfile and `fabops metrics` (which reads the marker) then
    # print one series, not two (docs/metrics.md, fabops_build_info)
    version, python = build or (__version__, "%d.%d" % sys.version_info[:2])
    python = python_label(python)
    out: List[Family] = [
        ("fabops_build_info", "gauge", "The fabops version on the host, and its Python; always 1.",
         [(me + (("version", version), ("python", python)), 1)] if version else []),
    ]
    out += deployed_families(me, state, kept)
    out += run_families(me, kept)
    out += update_families(me, state, kept, now)
    out += service_families(me, kept)
    out += backup_families(me, kept)
    return out


def python_label(version: str) -> str:
    """A Python version as fabops_build_info's label has it: major.minor
    ("3.11.7" -> "3.11"); a marker that kept the full version (or any
    other text) then names the same series as the host's own runs."""
    return ".".join(str(version or "").split(".")[:2])


def deployed_families(me, state: dict, kept: dict) -> List[Family]:
    """The deployed commit (an info metric: short SHA and subject as labels)
    and when it was promoted, and whether a pin holds the host."""
    from ..shortsha import short_sha

    deployed = state.get("deployed")
    if not isinstance(deployed, str) or not deployed:
        return [("fabops_pinned", "gauge", "1 while a rollback or deploy --ref pins the host.",
                 [(me, 1 if state.get("pin") else 0)])]
    subject = kept.get("subject") if isinstance(kept.get("subject"), list) else []
    said = str(subject[1])[:SUBJECT_MAX] if len(subject) == 2 and subject[0] == deployed else ""
    at = state.get("deployed_at")
    return [
        ("fabops_deployed_commit_info", "gauge", "The deployed commit (short SHA) and its subject; always 1.",
         [(me + (("commit", short_sha(deployed)), ("subject", said)), 1)]),
        ("fabops_deployed_timestamp_seconds", "gauge", "When the deployed commit passed its gate and watch.",
         [(me, at)] if isinstance(at, (int, float)) else []),
        ("fabops_pinned", "gauge", "1 while a rollback or deploy --ref pins the host.",
         [(me, 1 if state.get("pin") else 0)]),
    ]


def run_families(me, kept: dict) -> List[Family]:
    """Runs counted by trigger and result, and each trigger's last run."""
    runs = kept.get("runs") if isinstance(kept.get("runs"), dict) else {}
    last = kept.get("last") if isinstance(kept.get("last"), dict) else {}
    counts = []
    for key in sorted(runs):
        trigger, _, result = key.partition(" ")
        if isinstance(runs[key], (int, float)):
            counts.append((me + (("trigger", trigger), ("result", result)), runs[key]))
    lasts = sorted((t, v) for t, v in last.items() if isinstance(v, dict))
    return [
        ("fabops_runs_total", "counter", "Host-side runs by trigger and result, since the host's first run.", counts),
        ("fabops_last_run_timestamp_seconds", "gauge", "When the trigger's last run ended.",
         [(me + (("trigger", t),), v.get("at") or 0) for t, v in lasts]),
        ("fabops_last_run_duration_seconds", "gauge", "How long the trigger's last run took (cron: the poll).",
         [(me + (("trigger", t),), v.get("seconds") or 0) for t, v in lasts]),
        ("fabops_last_run_exit_code", "gauge", "The exit code of the trigger's last run (docs/errors.md).",
         [(me + (("trigger", t),), v.get("code") or 0) for t, v in lasts]),
        ("fabops_last_run_result", "gauge", "The result of the trigger's last run, as a label; always 1.",
         [(me + (("trigger", t), ("result", str(v.get("result")))), 1) for t, v in lasts]),
    ]


def update_families(me, state: dict, kept: dict, now: float) -> List[Family]:
    """The update checks: the last that converged, what cron cannot deploy
    (since when), the bad targets and the restart budget."""
    from .state import RESTART_LIMIT, failing_of, recent_restarts

    failing = failing_of(state)
    since = failing.get("since") if isinstance(failing, dict) else None
    bad = state.get("bad") if isinstance(state.get("bad"), dict) else {}
    ok = kept.get("checked_ok")
    return [
        ("fabops_update_check_success_timestamp_seconds", "gauge",
         "When an update check last converged (a no-op or a deploy).", [(me, ok)] if ok else []),
        ("fabops_behind_origin_since_timestamp_seconds", "gauge",
         "Since when updates have failed or been held back while origin is ahead; 0 when they are not.",
         [(me, since if isinstance(since, (int, float)) else 0)]),
        ("fabops_bad_targets", "gauge", "Commits marked bad (a failed gate): cron skips them.", [(me, len(bad))]),
        ("fabops_restarts_in_window", "gauge", "Automatic restarts within the backoff window.",
         [(me, len(recent_restarts(state.get("restarts"), now)))]),
        ("fabops_restart_limit", "gauge", "Automatic restarts allowed within the backoff window.",
         [(me, RESTART_LIMIT)]),
    ]


def service_families(me, kept: dict) -> List[Family]:
    """Each service as its last health check found it."""
    services = kept.get("services") if isinstance(kept.get("services"), dict) else {}
    rows = sorted((n, v) for n, v in services.items() if isinstance(v, dict))
    return [
        ("fabops_service_up", "gauge", "1 when the service's last health check passed.",
         [(me + (("service", n),), 1 if v.get("up") else 0) for n, v in rows]),
        ("fabops_service_check_duration_seconds", "gauge", "How long the service's last health check took.",
         [(me + (("service", n),), v.get("seconds") or 0) for n, v in rows]),
        ("fabops_service_http_status", "gauge", "The HTTP status the service's last check answered.",
         [(me + (("service", n),), v["http_status"]) for n, v in rows if isinstance(v.get("http_status"), int)]),
        ("fabops_service_check_timestamp_seconds", "gauge", "When the service was last checked.",
         [(me + (("service", n),), v.get("at") or 0) for n, v in rows]),
    ]


def backup_families(me, kept: dict) -> List[Family]:
    """What cleanups freed, and the last backup that succeeded: when, and
    how many bytes (its result and duration are
    fabops_last_run_*{trigger="backup"}); and the last .env backup
    (backup-env) that succeeded."""
    b = kept.get("backup") if isinstance(kept.get("backup"), dict) else {}
    cleaned = kept.get("cleaned") if isinstance(kept.get("cleaned"), dict) else {}
    env = kept.get("env_backup") if isinstance(kept.get("env_backup"), dict) else {}
    return [
        ("fabops_cleanup_deleted_files_total", "counter", "Files the cleanup rules deleted, since the first clean.",
         [(me, cleaned.get("files") or 0)] if cleaned else []),
        ("fabops_cleanup_freed_bytes_total", "counter", "Bytes the cleanup rules freed, since the first clean.",
         [(me, cleaned.get("bytes") or 0)] if cleaned else []),
        ("fabops_backup_success_timestamp_seconds", "gauge", "When a backup run last succeeded.",
         [(me, b["at"])] if isinstance(b.get("at"), (int, float)) else []),
        ("fabops_backup_size_bytes", "gauge", "The bytes the last successful backup's items hold.",
         [(me, b["size"])] if isinstance(b.get("size"), int) else []),
        ("fabops_env_backup_success_timestamp_seconds", "gauge", "When a backup-env run on the host last succeeded.",
         [(me, env["at"])] if isinstance(env.get("at"), (int, float)) else []),
    ]


# ------------------------------------------------------------ the textfile

SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def textfile(host: Host) -> Optional[str]:
    """The host's file in the textfile-collector directory, or None when
    hosts.yml names no `metrics_dir` (nothing is written)."""
    directory = getattr(host, "metrics_dir", None)
    if not directory:
        return None
    return os.path.join(os.path.expanduser(directory), "fabops-%s.prom" % SAFE_NAME.sub("_", host.name))


def publish(host: Host, text: str) -> Optional[str]:
    """Write `text` to the host's textfile atomically (a temp file in the
    same directory, then a rename: node_exporter never reads half a file),
    0644 so node_exporter's user reads it. No fsync: the next run writes it
    again, and two fsyncs cost a cron poll some 10 ms of its wall time on a
    busy disk (docs/dependencies.md). The words of a failure, or None; the
    directory is setup's to make, never this run's."""
    path = textfile(host)
    if path is None:
        return None
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        return f"metrics: {directory} is not a directory (fabops setup makes it)"
    from .files import atomic_write

    try:
        atomic_write(path, text, mode=0o644, durable=False)
    except OSError as exc:
        return f"metrics: cannot write {path}: {exc.strerror or exc}"
    return None


def after(host: Host, change) -> Optional[str]:
    """What every host-side run does last: its counts noted in state.json
    (`change(kept)`), then the exposition written to the textfile. Never
    raises: a failure is returned, and said once in the update log (the
    same failure again on the next poll is not said again), so the run's
    own result stands (docs/metrics.md, "When a write fails")."""
    paths = HostPaths.for_home(host.home)
    out: dict = {}
    try:
        note(paths, change, host, out)
    except Exception as exc:  # a metrics problem never changes a run's result
        return written(host, paths, None, f"metrics: cannot update {paths.state}: {exc}")
    return said(host, paths, out)


def rendered(host: Host, paths: HostPaths, state: dict) -> Optional[str]:
    """The exposition of `state` written to the textfile; the failure (and
    any malformed value left out: IGNORED), or None. Never raises."""
    try:
        failed = publish(host, exposition(host, state))
    except Exception as exc:  # a malformed state.json: the run's result stands
        failed = f"metrics: cannot render {paths.state}: {type(exc).__name__}: {exc}"
    if IGNORED and not failed:
        failed = f"metrics: {paths.state}'s metrics key holds values that are not numbers, left out: " \
                 + "; ".join(dict.fromkeys(IGNORED))
    IGNORED.clear()
    return failed


def said(host: Host, paths: HostPaths, out: dict) -> Optional[str]:
    """A write made under the lock (folding's `out`): its failure said in
    the update log when it changed (state.json keeps it already)."""
    failed = out.get("failed")
    if failed != out.get("before"):
        logged(host, paths, failed, out.get("before"))
    return failed


def written(host: Host, paths: HostPaths, state: Optional[dict], failed: Optional[str] = None) -> Optional[str]:
    """The exposition of `state` (state.json as a run left it) written to
    the textfile, and a failure said once (tell); the failure, or None."""
    if state is not None:
        failed = rendered(host, paths, state)
    kept = (state or {}).get(KEY) if isinstance((state or {}).get(KEY), dict) else {}
    if failed != kept.get("failed"):
        tell(host, paths, failed, kept.get("failed"))
    return failed


def tell(host: Host, paths: HostPaths, failed: Optional[str], before: Optional[str]) -> None:
    """Say a write failure (or that writes work again) in the update log,
    and keep it in state so the next run says it only when it changed."""
    if logged(host, paths, failed, before):
        try:
            note(paths, lambda kept: kept.update(failed=failed))
        except Exception:  # noqa: BLE001 - never the run's result
            pass


def logged(host: Host, paths: HostPaths, failed: Optional[str], before: Optional[str]) -> bool:
    """The update log's line for a write failure, or that writes work
    again; False when the log itself cannot be written."""
    from .record import update_log_path

    # the failure said once: "metrics: written again (… is not a directory …)",
    # not the failure's own "metrics: " prefix a second time (#27's trial)
    was = str(before or "")
    was = was[len("metrics: "):] if was.startswith("metrics: ") else was
    line = f"warning: {failed}" if failed else f"metrics: written again ({was})"
    try:
        append_line(update_log_path(host, paths), f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {line}", fsync=False)
    except Exception:  # noqa: BLE001 - the update log's own failure is the run's to say (record.append_run)
        return False
    return True


def run_done(host: Host, trigger: str, result: str, code: int, seconds: float,
             to: Optional[str] = None, subject: str = "", saved: Optional[dict] = None,
             published: Optional[dict] = None) -> Optional[str]:
    """After a pipeline run (local-update: cron's, a deploy's, a rollback's):
    counted, and the subject of a commit it deployed kept for the info
    metric. `saved`: state.json as the run's last save left it, with the
    run counted already (run_counted): a run that deployed nothing then
    writes only the textfile; `published`: run_counted's `out` when that
    save wrote the textfile too (under the lock), so only its failure is said."""
    now = time.time()
    keep = result == "deployed" and to and subject

    def change(kept: dict) -> None:
        if saved is None:
            counted(kept, trigger, result, code, seconds, now)
        if keep:
            kept["subject"] = [to, subject]

    if saved is not None and not keep:
        if published and "failed" in published:
            return said(host, HostPaths.for_home(host.home), published)
        return written(host, HostPaths.for_home(host.home), saved)
    return after(host, change)


def recorded(host: Host, trigger: str, rec: dict, then=None) -> Optional[str]:
    """After a run whose record (`rec`: its history record, or the same
    keys) says its result, exit code and duration: counted under
    `trigger`, and `then(kept, now)` keeps what that run adds (a backup's
    time and size), in the same change under state.json's lock."""
    now = time.time()

    def change(kept: dict) -> None:
        counted(kept, trigger, str(rec.get("result")), int(rec.get("exit_code") or 0),
                float(rec.get("duration") or 0), now)
        if then is not None:
            then(kept, now)

    return after(host, change)


def backup_done(host: Host, rec: dict, items: List[dict]) -> Optional[str]:
    """After a backup run (its history record `rec`): counted (trigger
    backup, result backed_up or backup_failed) and, when it succeeded, its
    time and the bytes its snapshot's items hold."""
    size = sum(int(i.get("size") or 0) for i in items if isinstance(i, dict) and i.get("ok") and not i.get("skipped"))
    ok = rec.get("result") == "backed_up"
    return recorded(host, "backup", rec, (lambda kept, now: kept.update(backup={"at": now, "size": size})) if ok else None)


def restore_done(host: Host, rec: dict) -> Optional[str]:
    """After an in-place restore (its history record `rec`): counted
    (trigger restore, result restored or restore_failed, its exit code: 5
    when it holds the services), so a failed one is Prometheus' to see."""
    return recorded(host, "restore", rec)


def env_backup_done(host: Host, code: int, seconds: float) -> Optional[str]:
    """After a `backup-env` run on the host (cron's weekly line): counted
    (trigger backup-env, result backed_up, or backup_failed with its exit
    code) and, when it succeeded, its time: the .env backup's age is
    fabops_env_backup_success_timestamp_seconds' (docs/metrics.md)."""
    rec = {"result": "backup_failed" if code else "backed_up", "exit_code": code, "duration": seconds}
    return recorded(host, "backup-env", rec, None if code else (lambda kept, now: kept.update(env_backup={"at": now})))


def clean_done(host: Host, files: int, freed: int) -> Optional[str]:
    """After a clean on the host: counted (trigger clean, result cleaned),
    and the files it deleted and the bytes it freed added to their totals."""
    now = time.time()

    def change(kept: dict) -> None:
        counted(kept, "clean", "cleaned", 0, 0.0, now)
        totals = kept.get("cleaned") if isinstance(kept.get("cleaned"), dict) else {}
        kept["cleaned"] = {"files": int(totals.get("files") or 0) + files, "bytes": int(totals.get("bytes") or 0) + freed}

    return after(host, change)


def health_done(host: Host, status: str, code: int, seconds: float, checks: Iterable[dict]) -> Optional[str]:
    """After a health run: counted (trigger health, its status as the
    result: ok, recovered, down, backoff, busy) and each service's check kept."""
    now = time.time()
    found: Dict[str, dict] = {}
    for c in checks:
        found[str(c.get("service"))] = {"up": bool(c.get("ok")), "seconds": c.get("seconds") or 0,
                                        "http_status": c.get("http_status"), "at": now}

    def change(kept: dict) -> None:
        counted(kept, "health", status, code, seconds, now)
        kept["services"] = found

    return after(host, change)
