"""The dead-man's switch (docs/monitor.md, "Heartbeat").

If the host, cron or fabops itself dies, no run is left to say so: a
heartbeat service (healthchecks.io, Uptime Kuma's push monitors, ...)
notices that the pings stopped. Each of cron's runs (the update poll and
`health --fix`) pings hosts.yml's `heartbeat.url` when it converged or
found the host healthy, and `heartbeat.fail_url` (default: url + `/fail`)
when it did not; a run that found another run holding the host lock pings
nothing (that run says the verdict; a lock held past the service's grace
time shows as missing pings). A person's deploy or rollback pings nothing:
the heartbeat says that the host's own schedule is alive, which a laptop's
run would hide.

One GET with the hosts.yml timeout (default 5 s), no retry: the next run
pings again in minutes. A ping that fails never changes the run's result
or exit code; it is recorded in state.json's `heartbeat` (time, run,
which URL, ok, the answer in words, failures in a row), which `monitor`
and `setup --check` show. The URL is a secret and is in none of these:
the answer's words are the HTTP check's (host/httpcheck.request), which
name no URL, and are cut at the URL anyway should one ever appear.

On cron's path: standard library and host/httpcheck only, imported by the
run only when the host has a heartbeat.
"""
from __future__ import annotations

import time
from typing import Callable, List, Optional, Tuple

# The results that say the run did its job, per run kind; those in SILENT
# say nothing of the host (another run held the lock), so no ping. Every
# other result (aborted, rolled_back, broken; health: down, backoff, held)
# pings the fail URL.
OK = {
    # skipped_bad, deferred and skipped_unverified (an unsigned target,
    # docs/security.md "Verified commits"): the host serves its good commit
    # and the held target was notified once; a fail ping every poll would
    # page for a healthy host. superseded: a person ended the watch
    "update": ("noop", "deployed", "skipped_bad", "deferred", "skipped_unverified", "superseded"),
    "health": ("ok", "recovered"),
}
SILENT = {"update": ("locked",), "health": ("busy",)}


def kind_of(run: str, result: str) -> Optional[str]:
    """`ok` or `fail` (which URL a run that ended `result` pings), or None
    (no ping). Pure."""
    if result in SILENT.get(run, ()):
        return None
    return "ok" if result in OK.get(run, ()) else "fail"


def urls(heartbeat) -> Tuple[str, str]:
    """(success URL, failure URL) of a hosts.yml heartbeat: fail_url, else
    healthchecks.io's convention, url + `/fail`."""
    return heartbeat.url, heartbeat.fail_url or heartbeat.url.rstrip("/") + "/fail"


def ping(url: str, timeout: float) -> Tuple[bool, str]:
    """(answered 2xx, the answer in words) of one GET of `url`. Never raises."""
    from .httpcheck import request

    status, detail, _ = request({"url": url, "method": "GET", "headers": {}, "body": None, "timeout": timeout})
    return status is not None and 200 <= status < 300, detail


def scrubbed(detail: str, *secrets: str) -> str:
    """`detail` without any of `secrets` in it (nor a part of one from its
    path on): the words a ping's answer is recorded and shown with."""
    for secret in secrets:
        scheme, sep, rest = secret.partition("://")
        path = rest[rest.find("/"):] if sep and "/" in rest else ""
        for part in (secret, path if len(path) > 1 else None):
            if part:
                detail = detail.replace(part, "/***")
    return detail[:200]


def beat(heartbeat, state_path: str, run: str, result: str, now: Optional[float] = None,
         send: Callable[[str, float], Tuple[bool, str]] = ping) -> Optional[dict]:
    """Ping for a cron run of `run` (update, health) that ended `result`, and
    record it in state.json under its lock (merge_state_file); the record,
    or None when no ping is due. Never raises: a heartbeat is never the
    run's failure."""
    kind = kind_of(run, result) if heartbeat is not None else None
    if kind is None:
        return None
    ok_url, fail_url = urls(heartbeat)
    try:
        ok, detail = send(ok_url if kind == "ok" else fail_url, heartbeat.timeout)
    except Exception as exc:  # noqa: BLE001 - a ping must never fail the run
        ok, detail = False, f"not sent ({exc.__class__.__name__})"
    record = {"at": time.time() if now is None else now, "run": run, "result": result, "url": kind, "ok": ok,
              "detail": scrubbed(detail, ok_url, fail_url)}

    def count(state: dict) -> None:  # failed pings in a row, under the same lock as the record
        prev = state.get("heartbeat") if isinstance(state.get("heartbeat"), dict) else {}
        before = prev.get("failures") if isinstance(prev.get("failures"), int) else 0  # a hand edit's typo: 0
        record["failures"] = 0 if ok else before + 1
        state["heartbeat"] = record

    try:
        from .state import merge_state_file

        merge_state_file(state_path, {}, fold=count)
    except (OSError, ValueError):
        record["unrecorded"] = True  # a full disk: the run's own save says so; the ping was sent
    return record


# ------------------------------------------------------------------ shown
# What monitor's panel and `setup --check` say of the last ping (docs/
# monitor.md, "Heartbeat"): read from state.json on the laptop, never the URL.
_KEYS = {"at": (int, float), "run": str, "result": str, "url": str, "ok": bool, "detail": str, "failures": int}


def facts(state: Optional[dict], heartbeat) -> Optional[dict]:
    """monitor's `heartbeat` fact: whether hosts.yml sets one, and
    state.json's last ping (None: none, or not a ping record: a hand
    edit); None for a host with neither."""
    raw = state.get("heartbeat") if isinstance(state, dict) else None
    last = {k: raw.get(k) for k in _KEYS} if isinstance(raw, dict) else None
    if last is not None and not all(isinstance(last[k], t) for k, t in _KEYS.items()):
        last = None
    if heartbeat is None and last is None:
        return None
    return {"configured": heartbeat is not None, "last": last}


def line(fact: Optional[dict], now: float) -> Optional[Tuple[str, bool]]:
    """(the panel's and setup --check's line, whether it is good) of a
    `facts` value; None when there is nothing to say."""
    from .report import duration_text

    if not fact:
        return None
    last = fact["last"]
    if last is None:
        return "heartbeat: no ping yet (cron's next update or health run pings it)", True
    which = "the success URL" if last["url"] == "ok" else "the fail URL"
    said = f"last ping {duration_text(max(0.0, now - last['at']))} ago ({last['run']}: {which})"
    if not fact["configured"]:
        return f"heartbeat: not set in hosts.yml; the {said} was {_outcome(last)}", True
    return f"heartbeat: {said}: {_outcome(last)}", bool(last["ok"])


def _outcome(last: dict) -> str:
    if last["ok"]:
        return "ok"
    return f"FAILED ({last['detail']}, {last['failures']} in a row)"


def findings(fact: Optional[dict]) -> List[str]:
    """monitor's WARNING findings: a set heartbeat whose last ping failed
    (the service then reports the host missing, or failing, for a reason
    that is not the host's)."""
    last = (fact or {}).get("last")
    if not fact or not fact["configured"] or not last or last["ok"]:
        return []
    times = "time" if last["failures"] == 1 else "times"
    return [f"heartbeat ping failed {last['failures']} {times} in a row ({last['detail']}): the heartbeat service "
            "will report this host missing; check heartbeat.url and that the host reaches it"]
