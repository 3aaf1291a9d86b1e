"""What the new-user trial found missing from the README and the exit-code
tables (docs/tasks.md is generated from fabops/docgen.py)."""
import inspect
import re

from tests.conftest import ROOT


def _readme() -> str:
    return " ".join((ROOT / "README.md").read_text().split())


def test_the_json_exceptions_are_the_tasks_without_json():
    from fabops.tasks import ns

    def walk(c):
        for t in c.tasks.values():
            # as a person types it: Invoke serves prometheus_targets as prometheus-targets
            yield t.name.replace("_", "-"), "json" in inspect.signature(t.body).parameters
        for sub in c.collections.values():
            yield from walk(sub)

    without = sorted(name for name, has in walk(ns) if not has)
    said = re.search(r"task that takes it \(all but ([^;]+);", _readme()).group(1)
    assert sorted(re.findall(r"`([\w-]+)`", said)) == without, (said, without)


def test_the_quick_start_says_how_to_reach_inv_and_where_the_demo_commits_go():
    readme = _readme()
    assert "`. .venv/bin/activate`" in readme and "`.venv/bin/inv …`" in readme
    assert "author clone, `.fabops-demo/author/`" in readme


def test_status_exit_2_is_documented():
    tasks = (ROOT / "docs" / "tasks.md").read_text()
    row = next(ln for ln in tasks.splitlines() if ln.startswith("| 2 |"))
    assert "status" in row, row
    status = tasks.split("## `inv status`")[1].split("##")[0]
    assert "exit 2 when a service is down" in status, status
    errors_row = next(ln for ln in (ROOT / "docs" / "errors.md").read_text().splitlines() if ln.startswith("| 2 |"))
    assert "`status`: a service it lists as not running" in errors_row, errors_row


def test_the_readme_hosts_yml_loads_as_written():
    """#28: the README's hosts.yml named a staging host it never defined, so
    the example, copied to a file, exited 78 (`unknown host 'find-to-do-stg'`).
    Nothing loaded it: test_docs validates docs/setup-a-host.md's example only,
    and the README's was never extracted. fabops' own loader must take it as is."""
    from fabops.inventory import loads

    text = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", text, re.S)
    inv = loads(block, "README.md")
    assert {"find-to-do", "find-to-do-stg", "local"} <= set(inv.hosts), sorted(inv.hosts)


def test_the_promote_trial_hosts_yml_loads_as_written():
    """#28: docs/environments.md's recipe for trying promote on this machine
    (run end to end once by hand: staging deployed, promoted to production)
    gives a hosts.yml that loads as written, each host with its own home,
    checkout and port."""
    from fabops.inventory import loads

    text = (ROOT / "docs" / "environments.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "\n  stg:\n" in b]
    inv = loads(block, str(ROOT / "try.yml"))
    stg, prod = inv.hosts["stg"], inv.hosts["prod"]
    assert stg.home != prod.home and stg.app.path != prod.app.path, (stg, prod)
    assert [s.port for s in stg.services] != [s.port for s in prod.services]
