"""Shared fixtures for the three tiers (docs/testing.md).

- Every test runs with HOME pointed at a fresh temp dir: no test can read or
  write the real ~/.ssh/config, known_hosts or home of this machine.
- No GITHUB_* variable reaches a test (the job's summary, outputs, env and
  actor stay the job's), unless the test sets it.
- A tier whose component is missing skips with a reason; under
  FABOPS_REQUIRE_ALL=1 (as in CI) that skip is a failure instead.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.harness.sshd import SSHD, keygen, start_sshd

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_ALL = os.environ.get("FABOPS_REQUIRE_ALL") == "1"
AGENT_TESTS = os.environ.get("FABOPS_TEST_AGENT") == "1"  # every `fabops` of the tests through the agent


def require(condition: bool, reason: str) -> None:
    """Skip (or, under FABOPS_REQUIRE_ALL=1, fail) when a tier cannot run here."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"FABOPS_REQUIRE_ALL=1 but: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config):
    # Under GitHub Actions, GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, GITHUB_ENV ...
    # name the job's own files, and GITHUB_ACTOR changes what a deploy
    # records: no test sees any GITHUB_* variable unless it sets one itself
    # (tests/test_github_env.py).
    for name in [n for n in os.environ if n.startswith("GITHUB_")]:
        del os.environ[name]
    # this run's mark on every process it starts (tests/harness/leftovers.py)
    import uuid

    from tests.harness.leftovers import MARKER

    os.environ[MARKER] = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        from hypothesis import settings

        settings.register_profile("ci", deadline=None, derandomize=True, max_examples=60)
        settings.register_profile("dev", deadline=None, max_examples=40)
        settings.load_profile("ci" if os.environ.get("CI") else "dev")
    except ImportError:  # pragma: no cover
        pass


def pytest_sessionfinish(session, exitstatus):
    # the booted tier's shared rootfs (tests/harness/container.prepared),
    # also when the run failed or was interrupted
    from tests.harness import container

    container.remove_prepared()


def pytest_collection_modifyitems(config, items):
    # Tests without a tier marker are unit tests.
    for item in items:
        if not any(item.get_closest_marker(m) for m in ("ssh", "systemd", "unit")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session", autouse=True)
def no_process_left():
    """The session's last check: no process this run started is still
    running (#24). Set up before any other fixture, so it is torn down after
    all of them (sshds, sandboxes, containers); a leftover fails the run,
    named by pid and command line, and is then ended by its pid."""
    yield
    from tests.harness.leftovers import MARKER, end, wait_for_none

    left = wait_for_none(os.environ[MARKER], os.getpid())
    if left:
        end(sorted(left))
        pytest.fail("processes this test run started are still running (ended now): "
                    + "; ".join(f"{pid} {cmd}" for pid, cmd in sorted(left.items())), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def seeded_venv_dropped():
    """The venv tar RemoteApp(seed_venv=True) keeps (tests/harness/apps.py)
    is removed when the session ends."""
    yield
    from tests.harness.apps import drop_seeded_venv

    drop_seeded_venv()


@pytest.fixture(autouse=True)
def priority_kept():
    """No test leaves this pytest process at another CPU priority: a backup
    function run in process once set nice 19 for good, and every later test
    (and all it started) ran at a tenth of a busy machine's CPU: the CI run
    took 62 min and a follow test starved. Put back, and the test fails."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    yield
    after = os.getpriority(os.PRIO_PROCESS, 0)
    if after != before:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, before)  # root may raise it again
        except OSError:
            pass
        pytest.fail(f"the test left this pytest process at nice {after} (it was {before})", pytrace=False)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """A fresh HOME with an empty ~/.ssh for every test; no agent, no
    inherited inventory. The real ~/.ssh/config is never read."""
    home = tmp_path_factory.mktemp("home")
    (home / ".ssh").mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    for var in ("SSH_AUTH_SOCK", "FABOPS_INVENTORY", "FABOPS_DEBUG", "INVOKE_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    # The agent (fabops/agent/) is off in tests unless a test turns it on,
    # or FABOPS_TEST_AGENT=1 runs every `fabops` a test starts through it
    # (each test its own agent, in its own runtime directory, stopped after).
    runtime = tmp_path_factory.mktemp("xdg")
    runtime.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("FABOPS_AGENT", "1" if AGENT_TESTS else "0")
    yield home
    if AGENT_TESTS:
        from tests.harness.agent import stop_agent

        stop_agent(runtime)


@pytest.fixture(scope="session")
def client_key(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("client-key")
    require(shutil.which("ssh-keygen") is not None, "ssh-keygen not installed (apt-get install openssh-client)")
    return keygen(d / "id_ed25519", comment="fabops-test-client")


def _need_sshd():
    require(os.path.exists(SSHD), f"{SSHD} not installed (apt-get install openssh-server)")
    require(sys.platform.startswith("linux"), "the ssh tier needs Linux")
    require(
        os.geteuid() == 0,
        "the ssh tier needs root: each test sshd runs in its own mount namespace with a private home",
    )


@pytest.fixture
def sshd_factory(tmp_path, client_key):
    """Start extra test hosts: `sshd_factory("127.0.0.2")`."""
    _need_sshd()
    started = []

    def start(address: str = "127.0.0.1", trust: bool = True):
        host = start_sshd(tmp_path / f"sshd-{address}-{len(started)}", client_key, address)
        started.append(host)
        if trust:
            host.trust()
        return host

    yield start
    for host in started:
        host.stop()


@pytest.fixture
def ssh_host(sshd_factory):
    """One real sshd on 127.0.0.1, its key pinned in the isolated known_hosts."""
    return sshd_factory("127.0.0.1")


def write_inventory(path: Path, hosts: dict, **top) -> Path:
    """Write a hosts.yml with `app.path` defaulted so short test inventories validate."""
    data = {"defaults": {"app": {"path": "~/app"}}, "hosts": hosts}
    data.update(top)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def inventory_for(tmp_path):
    """Build a hosts.yml for test hosts: `inventory_for(h1=ssh_host, local={...})`."""

    def build(**hosts):
        entries = {}
        for name, spec in hosts.items():
            entries[name] = spec.inventory_entry() if hasattr(spec, "inventory_entry") else spec
        return write_inventory(tmp_path / "hosts.yml", entries)

    return build


def run_cli(*args, env=None, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    """Run the real `fabops` console script in a subprocess (what a user
    types). Any --json output is checked against docs/json.schema.json."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("COLUMNS", "200")
    r = subprocess.run(
        [sys.executable, "-m", "fabops.cli", *args],
        capture_output=True, text=True, env=full_env, cwd=cwd or ROOT,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )
    check_json_output(args, r)
    return r


JSON_SEEN: set = set()  # tasks whose --json output was validated in this session


def json_schema(definition: str = "") -> dict:
    """docs/json.schema.json, the published schema of every --json output.
    With `definition`, one of its $defs alone (monitor's "facts"): a value
    checked against the whole envelope could pass as another kind of host
    value, so a test of one kind names it."""
    import json

    schema = json.loads((ROOT / "docs" / "json.schema.json").read_text())
    if not definition:
        return schema
    return {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}


def check_json_output(args, r: subprocess.CompletedProcess) -> None:
    """Every task's --json is one envelope (docs/json.md): validate what a
    real run printed against the published schema. Progress and errors go to
    stderr, so stdout must be JSON, or empty (a usage error before output)."""
    import json

    if "--json" not in args or not r.stdout.strip():
        return
    import jsonschema

    schema = json_schema()
    try:
        docs = [json.loads(r.stdout)]
    except ValueError:
        docs = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]  # JSON lines (--watch)
    for doc in docs:
        try:
            jsonschema.validate(doc, schema)
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"--json output of {args} breaks docs/json.schema.json: {exc.message} "
                                 f"at {list(exc.absolute_path)}") from None
        if "schema" in doc:  # an envelope (not a `logs --json` line)
            assert doc["code"] == r.returncode, f"envelope code {doc['code']} != exit code {r.returncode} for {args}"
    task = next((a for a in args if not a.startswith("-")), None)
    JSON_SEEN.add(task)


def one(stdout: str) -> dict:
    """The only host's value in a task's --json envelope (docs/json.md)."""
    import json

    data = json.loads(stdout)
    assert set(data) >= {"schema", "code", "hosts"} and len(data["hosts"]) == 1, data
    return next(iter(data["hosts"].values()))


@pytest.fixture
def cpu_hog():
    """Both cores busy while the test runs, as on a fresh CI machine that is
    still installing things: two busy loops that end by themselves (a bound
    of 15 min in case teardown never runs), stopped by PID at teardown.
    Nothing a person reads as healthy or unhealthy may depend on this."""
    hogs = [subprocess.Popen(["timeout", "900", "sh", "-c", "while :; do :; done"], start_new_session=True)
            for _ in range(os.cpu_count() or 2)]
    yield hogs
    import signal

    for p in hogs:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # timeout and its loop: one process group
        except ProcessLookupError:
            pass
        p.wait()


# Pre-built by .ci/prebuild-wheelhouses (from .ci/run), read-only for tests:
# resolved before any fixture points HOME elsewhere.
TEST_CACHE = Path(os.environ.get("FABOPS_TEST_CACHE") or os.path.expanduser("~/.cache/fabops-tests"))


@pytest.fixture(scope="session")
def fabops_wheel(tmp_path_factory) -> Path:
    """The wheel of the code under test, built offline once per session."""
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    return next(out.glob("fabops_ssh-*.whl"))


@pytest.fixture(scope="session")
def user_venv(tmp_path_factory, fabops_wheel) -> Path:
    """A user's laptop venv: the wheel and its runtime dependencies alone
    (tests/test_journey.clean_venv). One per session: the modules that drive
    fabops as a user does (the journey, hooks and heartbeat, promote) only
    run its `inv` and `fabops`, never install into it."""
    from tests.test_journey import clean_venv

    return clean_venv(tmp_path_factory.mktemp("user") / "venv", fabops_wheel)


@pytest.fixture
def deploy_env(fabops_wheel, monkeypatch):
    """Environment for a laptop-side deploy in tests: this wheel, and the
    pre-built wheelhouses (never the network)."""
    require(
        (TEST_CACHE / "wheelhouse-cp311").is_dir(),
        f"no wheelhouse in {TEST_CACHE}: run .ci/prebuild-wheelhouses (bash .ci/run does)",
    )
    env = {"FABOPS_WHEEL": str(fabops_wheel), "FABOPS_WHEELHOUSE": str(TEST_CACHE)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def sandbox(tmp_path):
    """The sample app checked out on this machine (a `connection: local`
    host with the process back end), its services stopped at teardown."""
    from tests.harness.apps import Sandbox

    require(sys.platform.startswith("linux"), "the process back end needs Linux")
    box = Sandbox(tmp_path)
    yield box
    box.stop()
