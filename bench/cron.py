"""Cron's no-op poll on the host, side by side in one run (#25, "a lean
cron path"): the legacy bash poll (`git fetch` + `rev-parse` compare),
fabops' cron line on the fast path (host/fastpath.py: no Invoke), and the
same line through the full program (FABOPS_FASTPATH=0, as before the fast
path), against one local origin with nothing new.

fabops runs from its wheel in a venv, byte-compiled, as on a host. Rounds
are interleaved, each round in a rotated order, so that no command always
goes first; the table gives medians of wall and CPU time (the child's user
+ system), each side's overhead over the legacy poll (goal: at most
+60 ms of both) and the median of each round's paired ratio. Nothing here
is asserted by the tests. Run: `python -m bench cron` (BENCH_ROUNDS=N).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.pipeline import LEGACY_NOOP, host_venv, measure, med

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.sandbox import Origin, clone, kill_pidfile, local_inventory  # noqa: E402
from tests.harness.sshd import free_port  # noqa: E402

GOAL_MS = 60  # the bound over the legacy poll, wall and CPU


def bench_cron_noop(rounds: int = 31) -> str:
    base = Path(tempfile.mkdtemp(prefix="fabops-bench-cron-"))
    home = base / "host" / "home"
    try:
        fabops = host_venv(base)
        origin = Origin(base)
        app = base / "host" / "app"
        clone(origin, app)
        port = free_port()
        (app / ".env").write_text(f"DISCORD_TOKEN=x\nPORT={port}\n")
        home.mkdir(parents=True)
        inv = local_inventory(home / "host.yml", app, home, port)  # where setup puts it, as cron's line reads it
        script = base / "legacy-noop.sh"
        script.write_text(LEGACY_NOOP)
        line = [fabops, "local-update", "--trigger", "cron", "--splay", "0", "-i", str(inv)]  # cron.job_line's
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "FABOPS_FASTPATH")}
        cases = {
            "legacy bash (fetch + rev-parse)": (["bash", str(script), str(app)], env),
            "fabops cron line, fast path": (line, env),
            "fabops cron line, full program": (line, dict(env, FABOPS_FASTPATH="0")),
        }
        first = measure(line, env=env)  # the first deploy, then every poll is a no-op
        if first[3] != 0:
            return f"### Cron no-op poll\n\nthe first deploy exited {first[3]}\n"
        for argv, case_env in cases.values():  # warm: byte-compile, page cache
            measure(argv, env=case_env)
        names = list(cases)
        got = {name: [] for name in names}
        for i in range(rounds):
            for name in names[i % len(names):] + names[:i % len(names)]:
                argv, case_env = cases[name]
                got[name].append(measure(argv, env=case_env))
        legacy = got[names[0]]
        wall_l, cpu_l = med([m[0] for m in legacy]), med([m[1] for m in legacy])
        lines = [f"### Cron no-op poll on the host, median of {rounds} interleaved rounds", "",
                 "(local origin; fabops from its wheel in a venv; CPU = the child's user + system time)", "",
                 "| command | wall | over legacy | ratio | CPU | over legacy | ratio | peak RSS | exit |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for name in names:
            ms = got[name]
            wall, cpu = med([m[0] for m in ms]), med([m[1] for m in ms])
            rw = med([m[0] / b[0] for m, b in zip(ms, legacy)])
            rc = med([m[1] / max(b[1], 1e-6) for m, b in zip(ms, legacy)])
            codes = " ".join(map(str, sorted({m[3] for m in ms})))
            over = "" if ms is legacy else f"+{(wall - wall_l) * 1000:.0f} ms"
            over_cpu = "" if ms is legacy else f"+{(cpu - cpu_l) * 1000:.0f} ms"
            lines.append(f"| {name} | {wall * 1000:.0f} ms | {over} | {rw:.2f}× | {cpu * 1000:.0f} ms | {over_cpu} | "
                         f"{rc:.2f}× | {max(m[2] for m in ms) / 1024:.1f} MiB | {codes} |")
        fast, full = got[names[1]], got[names[2]]
        over_wall = (med([m[0] for m in fast]) - wall_l) * 1000
        over_cpu = (med([m[1] for m in fast]) - cpu_l) * 1000
        met = over_wall <= GOAL_MS and over_cpu <= GOAL_MS
        # paired in each round, so a machine that slows down during the run
        # (other load) moves both sides alike
        fw = med([a[0] / b[0] for a, b in zip(fast, full)])
        fc = med([a[1] / max(b[1], 1e-6) for a, b in zip(fast, full)])
        lines += ["", f"fast path / full program, the median of each round's ratio: {fw:.2f}× wall, {fc:.2f}× CPU",
                  "", f"goal: the fast path at most legacy + {GOAL_MS} ms, wall and CPU: "
                  f"{'met' if met else 'MISSED'} (+{over_wall:.0f} ms wall, +{over_cpu:.0f} ms CPU)", ""]
        return "\n".join(lines)
    finally:
        kill_pidfile(home / "services" / "bot.pid")
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    print(bench_cron_noop(int(os.environ.get("BENCH_ROUNDS") or 31)))
