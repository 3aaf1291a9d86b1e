"""The cron path's records (fabops/records.py: the planner's Health, Facts,
Opts, Need, Plan; the inventory's; HostPaths; State; the run record;
readiness; the health plan) are dataclasses whose methods are written once
(records.Frozen, records.Plain) instead of compiled per class by
dataclasses at import: cron's poll imports them every few minutes
(docs/architecture.md, "The cron fast path"). They behave as @dataclass
(frozen=True, for Frozen) would make them."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import FrozenInstanceError, MISSING, field, fields, make_dataclass, replace

import pytest

from fabops import inventory as I
from fabops import paths
from fabops import records
from fabops.host import health as H
from fabops.host import pipeline, readiness, record, services, state
from fabops.host import plan as P
from tests.conftest import ROOT

RECORDS = (P.Health, P.Facts, P.Opts, P.Need, P.Plan, I.Check, I.Service, I.DepRule, I.CleanupRule, I.Dump, I.Keep,
           I.Repository, I.Backup, I.App, I.Host, I.Inventory, paths.HostPaths, state.State, record.Step,
           record.RunResult, readiness.Readiness, services.ServiceStatus, pipeline.UpdateOptions, H.HealthReport,
           H.HealthFacts, H.HealthPlan)


def reference(cls):
    """What @dataclass (frozen=True for a Frozen) makes of `cls`'s fields."""
    spec = []
    for f in fields(cls):
        if f.default is not MISSING:
            spec.append((f.name, f.type, field(default=f.default)))
        elif f.default_factory is not MISSING:
            spec.append((f.name, f.type, field(default_factory=f.default_factory)))
        else:
            spec.append((f.name, f.type))
    return make_dataclass(cls.__name__, spec, frozen=issubclass(cls, records.Frozen))


def samples(cls):
    """Two instances' keyword arguments that differ in every required
    field and the first one."""
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    required = required or [fields(cls)[0].name]
    return ({name: f"{name}-1" for name in required}, {name: f"{name}-2" for name in required})


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_a_record_behaves_as_its_dataclass_would(cls):
    ref = reference(cls)
    one, two = samples(cls)
    if cls is P.Facts:  # its default `now` is the clock's: the same for both
        one, two = dict(one, now=1.0), dict(two, now=1.0)
    a, b, a2 = cls(**one), cls(**two), cls(**one)
    assert repr(a) == repr(ref(**one)).replace(f"types.{cls.__name__}", cls.__name__)
    assert (a == a2, a == b, a != b, a == ref(**one)) == (True, False, True, False)
    name = fields(cls)[0].name
    if issubclass(cls, records.Frozen):
        try:
            hash(ref(**one))
        except TypeError:  # a field holds a dict (a Plan's finishing, a Host's thresholds): unhashable there too
            with pytest.raises(TypeError):
                hash(a)
        else:
            assert hash(a) == hash(a2) and {a, a2, b} == {a, b}
        with pytest.raises(FrozenInstanceError):
            setattr(a, name, "x")
        with pytest.raises(FrozenInstanceError):
            delattr(a, name)
    else:  # eq without frozen: unhashable, assignable, as @dataclass makes it
        with pytest.raises(TypeError):
            hash(a)
        a2 = cls(**one)
        setattr(a2, name, "x")
        assert getattr(a2, name) == "x" and a2 != a
    changed = replace(a, **{name: "other"})
    assert getattr(changed, name) == "other" and getattr(a, name) == one[name]
    positional = cls(*[one.get(f.name, getattr(a, f.name)) for f in fields(cls)])
    assert positional == a
    with pytest.raises(TypeError):
        cls(*(("x",) * (len(fields(cls)) + 1)))
    if any(f.default is MISSING and f.default_factory is MISSING for f in fields(cls)):
        with pytest.raises(TypeError):
            cls()
    with pytest.raises(TypeError):
        cls(**one, unknown=1)


def test_facts_now_defaults_to_the_clock_at_creation():
    import time

    before = time.time()
    assert before <= P.Facts(origin=None, head=None).now <= time.time()


def test_the_cron_path_compiles_no_methods():
    """dataclasses compiled some 90 functions (exec) for the two dozen
    records cron's two lines import, at every poll; what remains is the
    modules' own code."""
    script = (
        "import builtins, sys\n"
        "calls = []\n"
        "real = builtins.exec\n"
        "def counting(*a, **k):\n"
        "    calls.append(sys._getframe(1).f_code.co_filename)\n"
        "    return real(*a, **k)\n"
        "builtins.exec = counting\n"
        "import fabops.host.fastpath, fabops.host.update, fabops.host.health\n"  # cron's two lines (host/fastpath.py)
        "builtins.exec = real\n"
        "print(sum(name.endswith('dataclasses.py') for name in calls))\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0", f"dataclasses compiled {r.stdout.strip()} functions on the cron path"
