"""Invoke, imported without unittest.mock and its own yaml (issue #25: a
command's start-up).

invoke.context imports `Mock` from unittest.mock at module level, for its
MockContext alone; unittest.mock imports asyncio, and the two were the
larger part of `import invoke` (docs/benchmarks.md, "Monitor, cold").
`load()` imports invoke while a stand-in `unittest.mock` is in
sys.modules, whose `Mock` imports the real module at its first call, and
takes the stand-in away again before it returns: a later
`import unittest.mock` gets the real module, and MockContext works as
before. When invoke or unittest.mock is already imported (`inv`, the
tests) it does nothing.
"""
from __future__ import annotations

import sys
import types

_NAME = "unittest.mock"


def _real():
    """The real unittest.mock (the stand-in taken away first, if it is still there)."""
    import importlib

    if isinstance(sys.modules.get(_NAME), _StandIn):
        del sys.modules[_NAME]
    return importlib.import_module(_NAME)


def Mock(*args, **kwargs):  # noqa: N802 - the name invoke.context imports
    """unittest.mock.Mock, its module imported at the first call (MockContext's)."""
    return _real().Mock(*args, **kwargs)


class _StandIn(types.ModuleType):
    """`unittest.mock` while invoke imports: `Mock` above, any other name
    (a later Invoke's) from the real module."""

    def __getattr__(self, name):
        if name.startswith("__"):  # the import system's questions (__path__ ...): a plain module's answers
            raise AttributeError(name)
        return getattr(_real(), name)


def load() -> None:
    """Import invoke without importing unittest.mock (and asyncio), and
    with the installed PyYAML as its yaml (fabops reads hosts.yml with it)
    instead of the pure-Python copy Invoke vendors: Invoke takes the
    installed one itself when its vendored copy is gone (distributions
    unvendor it), and uses it for yaml.safe_load of its config files alone."""
    if "invoke" in sys.modules or _NAME in sys.modules:
        return
    try:
        import yaml
    except ImportError:  # pragma: no cover - a dependency of fabops
        pass
    else:
        sys.modules.setdefault("invoke.vendor.yaml", yaml)
    stand_in = _StandIn(_NAME)
    stand_in.Mock = Mock
    sys.modules[_NAME] = stand_in
    try:
        __import__("invoke")
    finally:
        if sys.modules.get(_NAME) is stand_in:
            del sys.modules[_NAME]
