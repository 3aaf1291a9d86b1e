"""The gate's settle window against the watch window (issue #25), on the
booted find-to-do container (real systemd, `Restart=on-failure`,
`RestartSec=2`), measured side by side in one run, modes alternated round
by round:

1. a code-only `deploy --no-watch` to the gate's verdict with `settle` 2 s
   and 0 (watch 0, as the issue measured it: with a watch on, `--no-watch`
   returns at the same point), and the legacy flow (pull, restart,
   `sleep 5`, is-active) beside them; with the time until the new commit
   answers its check;
2. a commit that crashes at boot, or N s after its first good answer
   (N = 0.5, 1, 3), deployed with `settle` 2 s or 0 and a watch window of
   WATCH or none: what catches it (the gate or the watch), how long after the
   crash the rollback starts, when the previous commit answers again, and
   the state the host is left in.

The app is the sample app behind a small wrapper pushed into this bench's
own origin: it writes `start`, `answer` (the first HTTP 200) and `crash`
marks with the host's wall clock to ~/settle-marks.jsonl (outside the
checkout), and `die-after-answer N` exits N s after that first answer.

Prints Markdown. Run: `python -m bench settle` (needs root, systemd-nspawn
and the test wheelhouses: `bash .ci/run` prepares them). BENCH_ROUNDS=N
sets the rounds (3); BENCH_ONLY=code or crashes runs one part.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.recovery import LEGACY, Host  # noqa: E402
from tests.harness import container  # noqa: E402
from tests.harness.sandbox import SAMPLE_APP  # noqa: E402

WATCH = "10s"
CRASHES = (("crash at boot", "crash"), ("crash 0.5 s after its first answer", "die-after-answer 0.5"),
           ("crash 1 s after its first answer", "die-after-answer 1"),
           ("crash 3 s after its first answer", "die-after-answer 3"))
# (label, settle, watch, deploy's own flags)
MODES = (("settle 2 s, watch " + WATCH, "2s", WATCH, ()), ("settle 0, watch " + WATCH, "0s", WATCH, ()),
         (f"settle 2 s, watch {WATCH}, `--no-watch`", "2s", WATCH, ("--no-watch",)),
         (f"settle 0, watch {WATCH}, `--no-watch`", "0s", WATCH, ("--no-watch",)),
         ("settle 2 s, no watch", "2s", "0s", ()), ("settle 0, no watch", "0s", "0s", ()))
HOME = "~/.fabops/voice-meeting-bot"

WRAPPER = '''"""bench/settle.py's wrapper around the sample app (sample_app.py): marks
start, first answer and crash with the wall clock in ../settle-marks.jsonl;
BEHAVIOUR `die-after-answer N` exits N s after the first HTTP 200."""
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sample_app as s  # noqa: E402

MARKS = os.path.join(os.path.dirname(s.HERE), "settle-marks.jsonl")


def mark(event):
    with open(MARKS, "a") as fh:
        fh.write(json.dumps({"event": event, "version": s.VERSION, "pid": os.getpid(), "t": time.time()}) + "\\n")


answered = []
send = s.Handler._send


def _send(self, code, body):
    send(self, code, body)
    if code == 200 and not answered:
        answered.append(True)
        mark("answer")
        if s.BEHAVIOUR.startswith("die-after-answer "):
            def die():
                mark("crash")
                os._exit(3)

            threading.Timer(float(s.BEHAVIOUR.split()[1]), die).start()


s.Handler._send = _send
mark("start")
if s.BEHAVIOUR == "crash":
    mark("crash")
s.main()
'''


class Bench:
    def __init__(self, base: Path):
        self.host = Host(base)
        self.n = 1
        try:
            self.push("ok", {"app.py": WRAPPER, "sample_app.py": (SAMPLE_APP / "app.py").read_text()})
            self.mode("2s", "0s")
            self.deploy("--no-watch")
        except BaseException:  # bench() gets no Bench to stop: stop the container here
            self.host.box.stop()
            raise

    def push(self, behaviour: str, files=None) -> str:
        self.n += 1
        self.host.origin.push(f"v{self.n} {behaviour}",
                              {"VERSION": f"{self.n}\n", "BEHAVIOUR": behaviour + "\n", **(files or {})})
        return str(self.n)

    def mode(self, settle: str, watch: str) -> None:
        import yaml

        data = yaml.safe_load(self.host.inv.read_text())
        svc = data["hosts"]["find-to-do"]["services"][0]
        svc["settle"], svc["watch"] = settle, watch
        self.host.inv.write_text(yaml.safe_dump(data, sort_keys=False))

    def deploy(self, *args, ok=(0,)):
        self.host.ssh(": > ~/settle-marks.jsonl")
        start = time.time()
        seconds, r = self.host.fab("deploy", "--json", *args, ok=ok)
        data = json.loads(r.stdout)
        res = (data.get("hosts") or data)["find-to-do"]
        marks = [json.loads(x) for x in self.host.ssh("cat ~/settle-marks.jsonl").splitlines() if x.strip()]
        return start, seconds, res, marks

    def settled_state(self):
        """What the host serves and believes a moment after the verdict."""
        time.sleep(3.5)  # past RestartSec=2 and a start: a death systemd restarts shows
        try:
            serving = self.host.version()
        except Exception:  # noqa: BLE001 - nothing answering is a state too
            serving = None
        state = json.loads(self.host.ssh(f"cat {HOME}/state.json"))
        return serving, state

    def outcome(self, run_id: str) -> dict:
        """The run's history record, once it has one (after a `--no-watch`
        deploy the host goes on watching, and decides later)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for line in reversed(self.host.ssh(f"tail -n 5 {HOME}/history.jsonl").splitlines()):
                rec = json.loads(line)
                if rec.get("run_id") == run_id:
                    return rec
            time.sleep(0.5)
        raise RuntimeError(f"run {run_id} has no history record after 120 s")


def first(marks, event, version, after=0.0):
    return next((m["t"] for m in marks if m["event"] == event and m["version"] == version and m["t"] >= after), None)


def code_only(b: Bench, rounds: int):
    """Part 1: [(settle 2 verdict, restart step, answer), (settle 0 ...)], legacy walls."""
    rows = {"2s": [], "0s": []}
    legacy = []
    for i in range(rounds):
        order = ("2s", "0s") if i % 2 == 0 else ("0s", "2s")
        for settle in order:
            b.mode(settle, "0s")
            version = b.push("ok")
            start, seconds, res, marks = b.deploy("--no-watch")
            assert res["result"] == "deployed", res
            restart = sum(s["seconds"] for s in res["steps"] if s["name"].startswith("restart"))
            rows[settle].append((seconds, restart, first(marks, "answer", version) - start))
        b.push("ok")
        t = time.perf_counter()
        b.host.ssh(LEGACY)
        legacy.append(time.perf_counter() - t)
        b.deploy("--no-watch")  # fabops adopts what the legacy flow left
    return rows, legacy


def bad_deploy(b: Bench, settle: str, watch: str, flags, behaviour: str) -> dict:
    b.mode(settle, watch)
    good = b.host.version()
    bad = b.push(behaviour)
    start, seconds, res, marks = b.deploy(*flags, ok=(0, 2, 5))
    said = res["result"]
    if "--no-watch" in flags and said == "deployed":
        res = dict(res, **b.outcome(res["run_id"]))  # what the host's watch decided
        marks = [json.loads(x) for x in b.host.ssh("cat ~/settle-marks.jsonl").splitlines() if x.strip()]
    crash = first(marks, "crash", bad)
    back = first(marks, "start", good, after=crash or 0.0)
    serving, state = b.settled_state()
    failed = next((s for s in res["steps"] if not s["ok"]), None)
    out = {
        "said": said, "result": res["result"], "caught_by": (failed["name"].split()[0] if failed else "-"),
        "verdict": seconds, "detect": (back - crash) if back and crash else None,
        "again": (first(marks, "answer", good, after=crash or 0.0) or 0.0) - start if back else None,
        "serving": serving, "deployed": state.get("deployed"),
        "end": ("previous commit" if serving == good else f"the bad commit (v{bad})" if serving == bad
                else "nothing answering"),
    }
    if res["result"] != "rolled_back" or serving != good:  # left on the bad commit: put a good one back
        b.mode("2s", "0s")
        b.push("ok")
        b.deploy("--no-watch")
    return out


def crashes(b: Bench, rounds: int):
    got = {(m[0], c[0]): [] for m in MODES for c in CRASHES}
    for i in range(rounds):
        modes = MODES if i % 2 == 0 else tuple(reversed(MODES))
        for label, behaviour in CRASHES:
            for mode, settle, watch, flags in modes:
                got[(mode, label)].append(bad_deploy(b, settle, watch, flags, behaviour))
    return got


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def secs(v, fmt="{:.2f} s"):
    return "-" if v is None else fmt.format(v)


def report(rounds: int, rows, legacy, got) -> str:
    return "\n".join((code_only_table(rounds, rows, legacy) if rows else [])
                     + (crash_table(rounds, got) if got else []))


def code_only_table(rounds: int, rows, legacy):
    lg = med(legacy)
    s2, s0 = ([med([r[i] for r in rows[k]]) for i in range(3)] for k in ("2s", "0s"))
    return [
        f"### Code-only deploy, `--no-watch`, watch 0 (median of {rounds}, alternated)",
        "",
        "| | to the gate's verdict | restart step | new commit answers | vs legacy |",
        "|---|---:|---:|---:|---:|",
        f"| legacy: pull, restart, `sleep 5`, is-active | {lg:.2f} s | | | 1.00× |",
        f"| fabops, settle 2 s | {s2[0]:.2f} s | {s2[1]:.2f} s | {s2[2]:.2f} s | {lg / s2[0]:.2f}× faster |",
        f"| fabops, settle 0 | {s0[0]:.2f} s | {s0[1]:.2f} s | {s0[2]:.2f} s | {lg / s0[0]:.2f}× faster |",
        "",
        "\"New commit answers\" is from the command's start to the new process's",
        "first HTTP 200 (the gate's own check), by the host's clock. Paired round by round, settle 0",
        f"takes {med([a[0] / b[0] for a, b in zip(rows['0s'], rows['2s'])]):.2f}× the verdict time of settle 2 s.",
        "",
    ]


def crash_table(rounds: int, got):
    lines = [
        f"### A crashing commit, by mode (median of {rounds}; crash → rollback starts; deploy start → previous "
        "commit answers again)",
        "",
        "| commit | mode | deploy says | result | caught by | crash → rollback | previous answers | verdict "
        "| host ends on |",
        "|---|---|---|---|---|---:|---:|---:|---|",
    ]
    for label, _ in CRASHES:
        for mode, _s, _w, _f in MODES:
            runs = got[(mode, label)]
            said = sorted({r["said"] for r in runs})
            results = sorted({r["result"] for r in runs})
            caught = sorted({r["caught_by"] for r in runs})
            ends = sorted({r["end"].split(" (v")[0] for r in runs})
            lines.append(f"| {label} | {mode} | {'/'.join(said)} | {'/'.join(results)} | {'/'.join(caught)} | "
                         f"{secs(med([r['detect'] for r in runs]))} | {secs(med([r['again'] for r in runs]))} | "
                         f"{secs(med([r['verdict'] for r in runs]))} | {'/'.join(ends)} |")
    lines += ["", "\"deploy says\": the command's result; \"result\": the run's own, in the host's history (a",
              "`--no-watch` deploy returns at the gate and the host goes on watching); \"caught by\": the",
              "failed step (`restart`: the gate; `watch`: the watch window; `-`: nothing); \"verdict\": the",
              "whole `deploy` command. The host's state is read 3.5 s after the run's end, past systemd's",
              "`RestartSec=2` and a start.", ""]
    return lines


def bench(rounds: int = 3) -> str:
    if container.usable() is not None:
        return f"### Settle against watch on the booted host\n\nskipped: {container.usable()}\n"
    container.sweep_stale()
    base = Path(tempfile.mkdtemp(prefix="fabops-bench-settle-"))
    b = None
    try:
        b = Bench(base)
        only = os.environ.get("BENCH_ONLY")  # "code" or "crashes": one part
        rows, legacy = code_only(b, rounds) if only != "crashes" else ({}, [])
        got = crashes(b, rounds) if only != "code" else {}
        if os.environ.get("BENCH_RAW"):
            print(json.dumps({"code_only": rows, "legacy": legacy,
                              "crashes": {f"{k[0]} | {k[1]}": v for k, v in got.items()}}, indent=1))
        return report(rounds, rows, legacy, got)
    finally:
        if b is not None:
            b.host.box.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    print(bench(int(os.environ.get("BENCH_ROUNDS") or 3)))


if __name__ == "__main__":
    main()
