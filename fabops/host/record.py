"""What a host-side run leaves behind (docs/architecture.md, "The
pipeline"): its result (`RunResult`, with the exit code each result maps
to), the outcome fields of state.json, one history record, one update-log
line, and the notifications, a failure notified once. The pipeline
(host/pipeline.py) decides; this module only records what it decided.
Standard library only: runs under cron on the host's Python 3.9."""
from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import field
from typing import Callable, List, Optional, Sequence, Tuple

from .. import errors
from ..inventory import Host
from ..paths import HostPaths
from ..records import Plain, plain
from ..shortsha import short_sha
from .files import append_json, append_line
from .state import State, failing_after

RESULT_CODES = {
    "noop": errors.OK,
    "deployed": errors.OK,
    "aborted": errors.FAILED,
    "rolled_back": errors.FAILED,
    "broken": errors.BROKEN,
    "locked": errors.LOCKED,
    "skipped_bad": errors.WARNING,
    "skipped_unverified": errors.WARNING,  # an unsigned target held (host/plan._signed): one record
    "deferred": errors.WARNING,  # a retryable target waits for its next try
    # a rollback, reset or restart ended this run's watch: the commit was
    # neither promoted nor marked bad, and the next run finishes it. Not a
    # failure (the person who ended it knows; nothing is notified), not done
    "superseded": errors.WARNING,
    # --dry-run: what the real run would do, with the code it would exit with
    "would_deploy": errors.OK,
    # deploy --dry-run before fabops is on the host: it installs, then its planner decides
    "would_install": errors.OK,
    "would_abort": errors.FAILED,
    # the real run would record `broken` without acting (host/dry_run.dry_result)
    "would_break": errors.BROKEN,
}
FAILURES = ("aborted", "rolled_back", "broken")
# The triggers whose history record is a verdict, not a run that shipped
# (healthy_again): a person's `restart` and `health --fix`.
VERDICT_TRIGGERS = ("restart", "health")


# The end of the warning a deploy of an unsigned commit records
# (host/plan._signed): the words history and the update log show.
SHIPPED_UNVERIFIED = "deployed anyway (--allow-unverified)"


def shipped_unverified(rec: dict) -> bool:
    """Whether a history record's run shipped a commit not signed by an
    allowed key (`--allow-unverified`, docs/security.md, "Verified
    commits"): its `unverified` field, which every pipeline record has
    since #29 (Recorder.record). A record written before it has none, and
    says so only by its warning's words (their end, SHIPPED_UNVERIFIED)."""
    flag = rec.get("unverified")
    if isinstance(flag, bool):
        return flag
    warnings = rec.get("warnings")
    return isinstance(warnings, list) and any(str(w).endswith(SHIPPED_UNVERIFIED) for w in warnings)


def unverified_warning(rec: dict) -> Optional[str]:
    """The warning of a record that shipped a commit not signed by an
    allowed key (shipped_unverified), its text as the run said it; None
    for any other record."""
    if not shipped_unverified(rec):
        return None
    warnings = rec.get("warnings") if isinstance(rec.get("warnings"), list) else []
    return next((str(w) for w in warnings if str(w).endswith(SHIPPED_UNVERIFIED)), SHIPPED_UNVERIFIED)


def shown_result(rec: dict) -> str:
    """A history record's result as a person reads it (the update log,
    history's rows): the record's word, except that a restart's or health
    --fix's (healthy_again) says `healthy`, what it found. Its record
    says `deployed`, which the verdict rules need (host/state.py) and
    --json keeps, but a person read it as a commit shipped (#24); its
    message says what the task did (`restarted bot at X; healthy`).
    docs/architecture.md, "Command line"."""
    result = str(rec.get("result"))
    if result == "deployed" and rec.get("trigger") in VERDICT_TRIGGERS:
        return "healthy"
    # an unsigned commit shipped on a person's word: `deployed!`, so that
    # history's row and the update log say it, not --json alone (#29's trial)
    return "deployed!" if result == "deployed" and shipped_unverified(rec) else result


@plain
class Step(Plain):
    name: str
    ok: bool = True
    seconds: float = 0.0
    message: str = ""
    requests: Optional[int] = None  # HTTP checks fired by a gate or a watch

    def to_dict(self) -> dict:
        out = {"name": self.name, "ok": self.ok, "seconds": round(self.seconds, 3), "message": self.message}
        if self.requests is not None:
            out["requests"] = self.requests
        return out


@plain
class RunResult(Plain):
    result: str
    run_id: str
    trigger: str
    actor: str
    from_: Optional[str] = None
    to: Optional[str] = None
    message: str = ""
    steps: List[Step] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    duration: float = 0.0
    saved: Optional[str] = None  # where local changes were saved
    plan: Optional[dict] = None  # dry run only
    host: str = ""
    subject: str = ""  # what shipped: the target commit's subject and author
    author: str = ""
    # the run never started: a flag's value names nothing on the host
    # (--ref nosuchref): a usage error (64), whatever the result says
    usage: bool = False
    # the commit this run pinned the host to (a rollback, a --ref run),
    # a no-op's included: the laptop says so (tasks/deploy.py _pin_lines)
    pinned: Optional[str] = None
    # the warning that a person's run goes to a commit that failed its gate
    # before (host/plan.known_bad): warned, and no reason for exit 1, since
    # the person asked for that commit (a healthy retry exits 0)
    known_bad: Optional[str] = None
    # the target shipped though not signed by an allowed key (--ref X
    # --allow-unverified: host/plan._signed): history's `deployed!` reads it
    # (shipped_unverified), never the warning's words
    unverified: bool = False

    @property
    def exit_code(self) -> int:
        if self.usage:
            return errors.USAGE
        code = RESULT_CODES.get(self.result, errors.FAILED)
        if code == errors.OK and any(w != self.known_bad for w in self.warnings) and self.result != "noop":
            return errors.WARNING
        return code

    def to_dict(self) -> dict:
        return {
            "host": self.host,
            "run_id": self.run_id,
            "trigger": self.trigger,
            "actor": self.actor,
            "from": self.from_,
            "to": self.to,
            "result": self.result,
            "exit_code": self.exit_code,
            "message": self.message,
            "duration": round(self.duration, 3),
            "steps": [s.to_dict() for s in self.steps],
            "warnings": list(self.warnings),
            "saved": self.saved,
            "plan": self.plan,
            "subject": self.subject,
            "author": self.author,
            **({"pinned": self.pinned} if self.pinned else {}),
            **({"unverified": True} if self.unverified else {}),
        }


def default_actor() -> str:
    """Who runs this, for the history and the lock message: the CI's actor
    (GitHub Actions sets GITHUB_ACTOR), else user@host. Cron and `env -i`
    may set neither USER nor LOGNAME; the password database still knows who
    runs this. The one definition, laptop and host alike."""
    if os.environ.get("GITHUB_ACTOR"):
        return f"{os.environ['GITHUB_ACTOR']}@github-actions"
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        import pwd

        try:
            user = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:  # a uid with no passwd entry (some containers)
            user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def short(sha: Optional[str]) -> str:
    """A commit in a host's line (progress, history's message): shortsha's
    length, 'none' when there is none."""
    return short_sha(sha, "none")


def counted(number: int, noun: str) -> str:
    """`1 file`, `2 files`: a count and its noun, as a person writes it."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def verdict_holds(all_healthy: bool, deployed: Optional[str], in_progress, head: Optional[str]) -> bool:
    """Whether a task that looked at every service may record the host's
    verdict (healthy_again): every service healthy, no run in progress (the
    next run finishes it and says its verdict) and the checkout on the
    deployed commit (a broken reset or rollback can leave it on another:
    healthy there says nothing of the deployed one). The one rule for a
    person's `restart` (remote.py) and `health --fix` (host/health.py)."""
    return bool(all_healthy and deployed and not in_progress and head == deployed)


def healthy_again(host: str, trigger: str, actor: str, deployed: Optional[str], restarted: Sequence[str] = (), *,
                  duration: float, check: Optional[float], after_broken: bool) -> Tuple[dict, dict]:
    """(state.json's updates, the history record) of a task that saw every
    service healthy on the deployed commit: recorded as a run is (result
    `deployed`), so its verdict supersedes the last run's and `status` and
    `monitor` no longer say `broken` (docs/architecture.md, "Plans"). It is
    no update check: state.json's `last_check` and `last_result` stay the
    last one's (monitor's "last update check" line and cron's stall), and
    the verdict is its own key, standing until the next check (`check`:
    the `last_check` the task read under the host lock; host/state.verdict_of). One
    record for a person's `restart` that brought every service up
    (remote.py) and for `health --fix` that found a broken host healthy
    (host/health.py); each decides when, this says what. `duration`: the
    seconds the task ran until it found the host healthy, which the history
    shows as any run's (no default: a 0 ms that no task took was shown).
    `after_broken`: the host's verdict before the task was `broken`
    (host/state.host_result), so "healthy again" is true; a restart of a
    host nothing was wrong with says "healthy" (#24: "again" claimed a
    recovery from nothing). No default: each caller knows what it found."""
    from .events import new_run_id

    now = time.time()
    at = f" at {short(deployed)}" if deployed else ""
    again = " again" if after_broken else ""
    message = (f"restarted {', '.join(restarted)}{at}; healthy{again}" if restarted
               else f"every service healthy{at}{again}")
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ts": now, "run_id": new_run_id(),
              "trigger": trigger, "actor": actor, "host": host, "from": deployed, "to": deployed,
              "result": "deployed", "exit_code": errors.OK, "message": message,
              "duration": round(duration, 3), "steps": [], "warnings": []}
    verdict = {"result": "deployed", "trigger": trigger, "actor": actor, "at": now, "check": check,
               "message": message}
    # broken_said forgotten: a BROKEN found after this fix is news, recorded again (plan.said_already)
    return {"verdict": verdict, "broken_said": None}, record


def update_log_path(host: Host, paths: HostPaths) -> str:
    """The update log every run writes its line to: logs.update, else the
    home's. hosts.yml spells it with ~/ as the host's shell reads it (as
    LocalStore.log): unexpanded, it was a directory named ~ in cwd."""
    return os.path.expanduser(host.logs.get("update") or paths.update_log)


def shipped(subject: Optional[str], author: Optional[str]) -> str:
    """` "subject" (author)` of a run's target commit, for log lines and notifications."""
    if not subject:
        return ""
    return f' "{subject}"' + (f" ({author})" if author else "")


def log_line(rec: dict) -> str:
    """The update-log line of a history record. Every run recorded in the
    history gets one, in this one format, whoever writes it (the pipeline,
    a backup, a reset, a restore, a restart, health --fix: append_run, and
    remote.state_merge_cmd over SSH), so `logs --source update --errors`
    and monitor's errors in the last hour (by the line's time:
    monitor._update_log_errors_cmd) see every failed run
    (docs/architecture.md, "No silent failure"). Its span reads as the
    history's (render.span): a first deploy `(first) -> X`, a run that
    moved no commit `at X`; its result word too (shown_result): a
    restart's `HEALTHY at X`."""
    frm, to = rec.get("from"), rec.get("to")
    if frm and frm == to:
        span = f"at {short(to)}"
    elif to and not frm:
        span = f"(first) -> {short(to)}"
    else:
        span = f"{short(frm)} -> {short(to)}"
    # a message that is the span again (a deploy's `A -> B`) is said once (#24's trial)
    message = "" if rec.get("message") == span else f": {rec.get('message')}"
    # `DEPLOYED!` says why: the warning (shown_result)
    message += f"{'; ' if message else ': '}{unverified_warning(rec)}" if unverified_warning(rec) else ""
    return (f"{rec.get('time')} [{rec.get('trigger')} {rec.get('actor')}] {shown_result(rec).upper()} "
            f"{span}{shipped(rec.get('subject'), rec.get('author'))} in {float(rec.get('duration') or 0):.1f}s"
            f"{message}")


def append_run(host: Host, paths: HostPaths, rec: dict) -> Optional[str]:
    """A run's history record and its update-log line (log_line), on this
    machine. The history first: a log that cannot be written is returned
    as the run's warning, never an error that loses the record."""
    append_json(paths.history, rec)
    try:
        append_line(update_log_path(host, paths), log_line(rec), fsync=False)
    except OSError as exc:
        return f"cannot write the update log: {exc}"
    return None


class Recorder:
    """Records one run's outcome. `save(state, fold=None)` writes state.json (the
    pipeline's own writer), `state()` is the run's State (read once by the
    pipeline, never re-read here); `describe(sha)` gives a commit's
    (subject, author); `count(trigger, result, code, seconds)` the fold
    that counts the run for its metrics in settle's own save."""

    def __init__(self, host: Host, paths: HostPaths, res: RunResult, save: Callable[..., None],
                 describe: Callable[[str], tuple], state: Callable[[], State], count: Optional[Callable] = None):
        self.host = host
        self.paths = paths
        self.res = res
        self.save = save
        self.describe = describe
        self.state = state
        self.started = time.monotonic()
        self.recorded = False  # a history record was written for this run
        self.count = count  # host/prom.run_counted: the fold that counts the run in settle's save
        self.counted = False  # its metrics count rode on a save (settle)
        # called once, before the record is written: the pipeline's
        # on_failure hook, whose step the record then holds (docs/pipeline.md, "Hooks")
        self.before_record: Optional[Callable[[], None]] = None

    @property
    def update_log(self) -> str:
        return update_log_path(self.host, self.paths)

    def log_output(self, title: str, output: str) -> None:
        """A command's output in the update log (best effort)."""
        try:
            append_line(self.update_log, f"--- {title} ({self.res.run_id})\n{output}", fsync=False)
        except OSError:
            pass

    def settle(self, state: State) -> None:
        """Write the outcome of this run into state: the last result, and
        what cron cannot deploy now (state.failing_after: shown by
        `monitor` and `status` until a run converges or holds elsewhere)."""
        res = self.res
        now = time.time()
        state.last_check = now
        state.last_result = res.result
        state.failing = failing_after(state.failing, res.result, res.to, state.deployed, self._why(state), now)
        if res.result == "deployed" or (res.result == "noop" and state.deployed == res.to):
            state.retry = None  # on a good commit now: an older target's retry is moot
            state.notified = []  # the next failure, even a repeat of an old one, is news
        if isinstance(state.retry, dict) and isinstance(state.bad, dict) and state.retry.get("target") in state.bad:
            # marked bad (this run's gate, or before): cron never retries it, so an older
            # retry's `next try` would be untrue in status and monitor (docs/pipeline.md)
            state.retry = None
        fold = None
        if self.count is not None and not self.counted:  # the run's metrics count rides on this save, once
            fold = self.count(res.trigger, res.result, res.exit_code, time.monotonic() - self.started)
        self.save(state, fold=fold)
        self.counted = fold is not None or self.counted

    def _why(self, state: State) -> str:
        """Why this run did not deploy its target, as `failing` keeps it: a
        hold's is the cause it holds for (the gate's failure, the rule's),
        which monitor and status say in their own words; a failure's, its
        message."""
        res = self.res
        if res.result == "skipped_bad":
            entry = state.bad.get(res.to) if isinstance(state.bad, dict) else None
            return str(entry.get("reason") if isinstance(entry, dict) and entry.get("reason") else res.message)
        if res.result == "deferred" and isinstance(state.retry, dict) and state.retry.get("reason"):
            return str(state.retry["reason"])
        return res.message

    def finish(self, result: str, message: str, mutate: Optional[Callable[[State], None]] = None) -> None:
        """End a run that changed something: state, history record and
        update-log line."""
        state = self.state()
        if mutate is not None:
            mutate(state)
        state.in_progress = None
        self.res.result = result
        self.res.message = message
        self.settle(state)
        self.record()

    def record_unrecorded_failure(self) -> None:
        """A run that stopped before `finish` (a preflight abort, an error
        mid-run) is still recorded: history, update log, one notification
        per (target, reason). Nothing fails silently."""
        if self.recorded:
            return
        try:
            self.settle(self.state())
        except OSError:
            pass  # the full-disk case: the record below may still get through
        try:
            self.record()
        except OSError as exc:  # a full disk must not turn a result into a traceback
            self.res.warnings.append(f"could not record this run: {exc.strerror or exc}")

    def shipped(self) -> str:
        """` "subject" (author)` of the target commit, for log lines and notifications."""
        return shipped(self.res.subject, self.res.author)

    def record(self) -> None:
        """History record and update-log line for every non-noop run."""
        res = self.res
        if self.before_record is not None and not self.recorded:
            self.before_record()
        res.duration = time.monotonic() - self.started
        if res.to and not res.subject:
            res.subject, res.author = self.describe(res.to)
        rec = res.to_dict()
        # always written, false too: a record without it is one written before #29 (shipped_unverified)
        rec["unverified"] = res.unverified
        rec["time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        rec["ts"] = time.time()
        rec.pop("plan", None)
        self.recorded = True
        warning = append_run(self.host, self.paths, rec)
        if warning:
            res.warnings.append(warning)
        self.notify()

    def notify(self) -> None:
        """Tell people about every non-no-op result, a failure once per
        (target, result, step where it stopped); a failed delivery is logged
        and never changes the result."""
        from ..notify import notify

        res = self.res
        if res.result == "superseded":
            return  # the rollback, reset or restart that ended it says so itself
        if res.result in FAILURES:
            failed = [st.name for st in res.steps if not st.ok]
            reason = re.sub(r"[0-9.]+", "", res.message)[:80]  # durations and counts vary run to run
            key = f"{res.to}:{res.result}:{failed[0] if failed else ''}:{reason}"
            try:
                state = self.state()
                if key in state.notified:
                    return
                state.notified = (state.notified + [key])[-50:]
                self.save(state)
            except OSError:
                pass
        for d in notify(self.host.name, res.result, f"{res.message}{self.shipped()}", home=self.paths.home,
                        environment=self.host.environment):
            if not d.ok:
                try:
                    append_line(self.update_log, f"notify {d.channel}: {d.detail}", fsync=False)
                except OSError:
                    pass
