"""No fabops module imports another module's private (`_name`) name (#24,
an outside review: maintenance/backup imported target's `_Feed`). A name
another module needs is public where it lives (docs/architecture.md,
"Layers": what a module offers is its public names). Checked statically,
like tests/test_layers.py."""
import ast
import pathlib

import fabops

ROOT = pathlib.Path(fabops.__file__).parent

# Imports of private names that predated this rule were made public one
# by one (#24): connection's connection_class, timeout_runner and
# hop_chain; maintenance/reset's held_in, ports_cmd and state_from_text;
# tasks/render's cut_cells; inventory's deep_merge, host/pipeline's Abort
# and tasks/deploy's inventory_flag. None is left, so there is no list of
# exceptions: a new private import fails the test below.


def private_imports(root: pathlib.Path = ROOT):
    """(module path under fabops/, name) of each `from <fabops module>
    import _name` in the package (`root`): relative imports and `fabops.` ones."""
    found = set()
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 0 and not (node.module or "").startswith("fabops"):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.add((path.relative_to(root).as_posix(), alias.name))
    return found


def test_no_module_imports_another_modules_private_name():
    assert private_imports() == set()


def test_the_scan_finds_a_private_import(tmp_path):
    """The scan itself works: a relative and a `fabops.` import of a
    `_name` are found, a dunder and a third-party `_name` are not (an
    empty result must mean none, not a scan that sees nothing)."""
    pkg = tmp_path / "fabops"
    (pkg / "host").mkdir(parents=True)
    (pkg / "host" / "x.py").write_text("from .pipeline import _Abort\nfrom . import __version__\n")
    (pkg / "y.py").write_text("from fabops.tasks.deploy import _inventory_flag\nfrom os import _exit\n")
    assert private_imports(pkg) == {("host/x.py", "_Abort"), ("y.py", "_inventory_flag")}


def test_the_former_private_names_are_public():
    """The names taken off the old list kept their meaning under a public
    name: the callers import those, and the private spellings are gone."""
    from fabops import inventory
    from fabops.host import pipeline
    from fabops.tasks import deploy

    assert inventory.deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}
    assert issubclass(pipeline.Abort, Exception)
    assert callable(deploy.inventory_flag)
    assert not any(hasattr(m, n) for m, n in ((inventory, "_merge"), (pipeline, "_Abort"),
                                              (deploy, "_inventory_flag")))


def test_the_restore_feeds_its_input_through_targets_public_feed():
    from fabops.maintenance.backup import _Fed
    from fabops.target import Feed

    assert issubclass(_Fed, Feed)
    assert ("maintenance/backup.py", "_Feed") not in private_imports()
