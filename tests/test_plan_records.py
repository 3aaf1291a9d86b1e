"""The planner's records (host/plan.py: Health, Facts, Opts, Need, Plan)
are frozen dataclasses whose methods are written once (plan._Frozen)
instead of compiled per class by dataclasses at import: cron's poll
imports plan.py every few minutes (docs/architecture.md, "The cron fast
path"). They behave as @dataclass(frozen=True) would make them."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import FrozenInstanceError, MISSING, field, fields, make_dataclass, replace

import pytest

from fabops.host import plan as P
from tests.conftest import ROOT

RECORDS = (P.Health, P.Facts, P.Opts, P.Need, P.Plan)


def reference(cls):
    """What @dataclass(frozen=True) makes of `cls`'s fields."""
    spec = []
    for f in fields(cls):
        if f.default is not MISSING:
            spec.append((f.name, f.type, field(default=f.default)))
        elif f.default_factory is not MISSING:
            spec.append((f.name, f.type, field(default_factory=f.default_factory)))
        else:
            spec.append((f.name, f.type))
    return make_dataclass(cls.__name__, spec, frozen=True)


def samples(cls):
    """Two instances' keyword arguments that differ in every required
    field and the first one."""
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    required = required or [fields(cls)[0].name]
    return ({name: f"{name}-1" for name in required}, {name: f"{name}-2" for name in required})


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_a_record_behaves_as_a_frozen_dataclass(cls):
    ref = reference(cls)
    one, two = samples(cls)
    if cls is P.Facts:  # its default `now` is the clock's: the same for both
        one, two = dict(one, now=1.0), dict(two, now=1.0)
    a, b, a2 = cls(**one), cls(**two), cls(**one)
    assert repr(a) == repr(ref(**one)).replace(f"types.{cls.__name__}", cls.__name__)
    assert (a == a2, a == b, a != b, a == ref(**one)) == (True, False, True, False)
    if cls is not P.Plan:  # a Plan may carry a dict (finishing): unhashable, as a dataclass's would be
        assert hash(a) == hash(a2) and {a, a2, b} == {a, b}
    name = fields(cls)[0].name
    with pytest.raises(FrozenInstanceError):
        setattr(a, name, "x")
    with pytest.raises(FrozenInstanceError):
        delattr(a, name)
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


def test_importing_the_planner_compiles_no_methods():
    """dataclasses compiled ~30 functions (exec) for these five classes at
    every import; what remains is the module's own code."""
    script = (
        "import builtins, sys\n"
        "import fabops.host.git, fabops.host.record, fabops.host.state\n"  # plan's imports, loaded before counting
        "calls = []\n"
        "real = builtins.exec\n"
        "def counting(*a, **k):\n"
        "    calls.append(sys._getframe(1).f_code.co_filename)\n"
        "    return real(*a, **k)\n"
        "builtins.exec = counting\n"
        "import fabops.host.plan\n"
        "builtins.exec = real\n"
        "print(sum(name.endswith('dataclasses.py') for name in calls))\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0", f"dataclasses compiled {r.stdout.strip()} functions for host/plan.py"
