"""Only verified commits ship (docs/security.md, "Verified commits"): the
`verify:` setting, the planner's hold of an unsigned or wrongly signed
target, and setup's refusal on a host whose git cannot check SSH
signatures."""
import pytest
import yaml

from fabops import inventory
from fabops.errors import ConfigError
from fabops.validate import signer_problem

pytestmark = pytest.mark.unit

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@example"


def load(verify) -> inventory.Host:
    data = {"hosts": {"web1": {"address": "10.0.0.5", "app": {"path": "/srv/app"}, "verify": verify}}}
    return inventory.loads(yaml.safe_dump(data), "hosts.yml").hosts["web1"]


def test_verify_reads_its_signers_and_host_yml_keeps_them():
    host = load({"signers": [KEY]})
    assert host.verify.signers == (KEY,)
    assert host.to_dict()["verify"] == {"signers": [KEY]}
    again = inventory.loads(yaml.safe_dump({"hosts": {"web1": {**host.to_dict(), "address": "10.0.0.5"}}}), "h.yml")
    assert again.hosts["web1"].verify == host.verify


@pytest.mark.parametrize("value", ["AAAA", "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "ssh-ed25519", "ssh-ed25519 !!notbase64!!"])
def test_a_signer_that_is_no_public_key_is_refused(value):
    assert signer_problem(value)
    with pytest.raises(ConfigError) as err:
        load({"signers": [value]})
    assert "verify.signers" in str(err.value)


def test_no_signers_is_refused_and_no_verify_is_none():
    with pytest.raises(ConfigError) as err:
        load({"signers": []})
    assert "at least one SSH public key" in str(err.value)
    assert load(None).verify is None
    assert "verify" not in load(None).to_dict()


# --- the planner (host/plan._signed): a host whose allowed-signers file is there
from fabops.host.dry_run import dry_result  # noqa: E402
from fabops.host.plan import Facts, Health, Need, Opts, Plan, Signed, plan  # noqa: E402
from fabops.host.record import RESULT_CODES  # noqa: E402
from fabops.host.state import State, failing_after  # noqa: E402
from fabops.host.verify import allowed_signers_text, signature_words, too_old  # noqa: E402

A, B = "a" * 40, "b" * 40
HOST = inventory.loads(yaml.safe_dump({"hosts": {"h": {
    "connection": "local", "app": {"path": "/srv/app"},
    "services": [{"name": "api", "manager": "process", "command": "python3 api.py"}]}}}), "h.yml").hosts["h"]
HEALTHY = (Health("api", True, "api is up"),)
FILE = "/etc/fabops/app/allowed_signers"


def decide(trigger="cron", signed=None, state=None, ref=None, allow=False, signers=FILE, origin=B):
    facts = Facts(origin=origin, head=A, ref_commit=B if ref else None, health=HEALTHY, problems=(), changed=(),
                  signers=signers, signed=signed)
    return plan(HOST, state or State(deployed=A), facts, Opts(trigger=trigger, ref=ref, allow_unverified=allow))


def test_the_target_is_checked_once_before_anything_else_is_gathered():
    need = decide(signed=None)
    assert isinstance(need, Need) and (need.fact, need.target) == ("verify", B)
    # a verdict on another commit is no verdict on this one
    assert isinstance(decide(signed=Signed(A, True, "signed")), Need)


def test_a_signed_target_deploys_and_says_who_signed_it():
    p = decide(signed=Signed(B, True, "signed for alice@example with ED25519 key SHA256:x"))
    assert (p.kind, p.target) == ("deploy", B)
    assert any("signed for alice@example" in line for line in p.says)


def test_without_the_file_nothing_is_checked():
    p = decide(signers="", signed=None)
    assert p.kind == "deploy"


@pytest.mark.parametrize("trigger", ["cron", "manual"])
def test_cron_holds_an_unsigned_target_and_reports_it_once(trigger):
    bad = Signed(B, False, "no signature")
    p = decide(trigger, bad)
    assert (p.kind, p.result, p.target, p.notify) == ("hold", "skipped_unverified", B, True)
    assert "not signed by an allowed key (no signature)" in p.message and "staying on" in p.message
    assert RESULT_CODES["skipped_unverified"] == 1 and dry_result(p) == "skipped_unverified"
    # the next poll: `failing` names the held target (Recorder.settle)
    failing = failing_after(None, "skipped_unverified", B, A, p.message, 1.0)
    again = decide(trigger, bad, State(deployed=A, failing=failing))
    assert (again.kind, again.result, again.notify) == ("hold", "skipped_unverified", False)
    assert again.message.endswith("(already reported)")


@pytest.mark.parametrize("trigger", ["deploy", "ci", "promote"])
def test_a_persons_deploy_of_an_unsigned_target_is_refused(trigger):
    p = decide(trigger, Signed(B, False, "No principal matched."))
    assert (p.kind, p.result, p.step) == ("abort", "aborted", "verify")
    assert f"--ref {B} --allow-unverified" in p.message and dry_result(p) == "would_abort"


def test_ref_with_allow_unverified_deploys_it_with_a_warning():
    p = decide("deploy", Signed(B, False, "no signature"), ref=B, allow=True)
    assert (p.kind, p.target) == ("deploy", B)
    assert any("deployed anyway (--allow-unverified)" in w for w in p.warnings)
    # the record's structured field (host/record.shipped_unverified), not the warning's words
    assert p.unverified is True
    assert decide("deploy", Signed(B, True, "signed"), ref=B).unverified is False


def test_the_deployed_commit_and_a_rollback_without_to_are_not_checked():
    assert decide(origin=A, signed=None).kind == "noop"
    state = State(deployed=B, previous=A)
    facts = Facts(origin=B, head=B, health=HEALTHY, problems=(), changed=(), signers=FILE, older=(A,))
    p = plan(HOST, state, facts, Opts(trigger="rollback"))
    assert (p.kind, p.target) == ("deploy", A)


def test_the_allowed_signers_file_and_gits_words():
    text = allowed_signers_text([KEY, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB two words"])
    assert 'alice@example namespaces="git" ssh-ed25519 AAAAC3' in text
    assert 'signer2 namespaces="git" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB\n' in text
    assert signature_words(False, "") == "no signature"
    assert signature_words(True, 'Good "git" signature for a@x with ED25519 key SHA256:k').startswith("signed for a@x")


@pytest.mark.parametrize("version,refused", [("git version 2.30.2", True), ("git version 2.34.0", False),
                                             ("git version 2.39.5", False), ("", True)])
def test_git_older_than_2_34_cannot_check_ssh_signatures(version, refused):
    problem = too_old(version)
    assert bool(problem) == refused
    if refused:
        assert "2.34 or newer" in problem


# --- setup's item (fabops/setup._verify)
class FakeRun:
    """What setup's item reads: the host, the deploy user's shell (its
    answers given), and the file writer (recorded)."""

    def __init__(self, host, answers):
        self.host, self.answers, self.written = host, answers, []
        self.dt = self

    def output(self, cmd) -> str:
        text = str(cmd)
        return next((out for key, out in self.answers.items() if key in text), "")

    def file(self, name, path, text, **kw):
        self.written.append((path, text, kw))
        from fabops.setup import ItemResult

        return ItemResult(name, "changed", path)


def test_setup_refuses_verify_where_git_cannot_check_ssh_signatures():
    from fabops.errors import CONFIG
    from fabops.setup import SetupReport, _verify

    run = FakeRun(load({"signers": [KEY]}), {"git --version": "git version 2.30.2\n"})
    (item,) = list(_verify(run))
    assert item.status == "refused" and "git 2.30 cannot check SSH signatures" in item.message, item
    assert SetupReport("web1", [item]).exit_code == CONFIG == 78 and run.written == []


def test_setup_writes_the_allowed_signers_file_as_root():
    from fabops.setup import _verify

    run = FakeRun(load({"signers": [KEY]}), {"git --version": "git version 2.39.5\n"})
    (item,) = list(_verify(run))
    ((path, text, kw),) = run.written
    assert path == "/etc/fabops/app/allowed_signers" and kw == {"mode": "0644", "root": True}
    assert 'alice@example namespaces="git" ssh-ed25519 ' in text


def test_setup_without_verify_says_the_file_still_holds():
    from fabops.setup import _verify

    run = FakeRun(load(None), {"test -f": "there\n"})
    (item,) = list(_verify(run))
    assert item.status == "warning" and "still requires signed commits" in item.message
    assert list(_verify(FakeRun(load(None), {}))) == []


def test_a_commit_signed_by_an_unlisted_key_says_so_first():
    """#29's trial: git's words for a good signature by a key the
    allowed-signers file does not list lead with `Good "git" signature`,
    and the hold's reason, cut, read as a pass. What it means goes first,
    with the key's fingerprint (to add it to `verify:`, or to refuse it)."""
    fp = "SHA256:Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789abc+/"
    for said in (f'Good "git" signature with ED25519 key {fp}\nNo principal matched.\n',
                 f'Good "git" signature with ED25519 key {fp}; No principal matched.'):
        assert signature_words(False, said) == f"signed by a key not in allowed_signers ({fp})"
    # anything else keeps git's own words
    assert signature_words(False, "error: no signature found") == "error: no signature found"


@pytest.mark.parametrize("path", ["/srv/app/.", "/srv/app/./", "/srv//app", "/srv/./app", "/srv/app//", "~/app/.", "./app"])
def test_a_host_path_with_a_dot_or_empty_component_is_refused_at_load(path):
    """`app.path: ~/app/.` named the app `.`: its allowed-signers file
    became /etc/fabops/./allowed_signers, which setup never writes, and
    every commit shipped unchecked. Every host path refuses `.`, `..` and
    `//` components, naming the key; the checkout's name is normalized."""
    for key, data in (("app.path", {"app": {"path": path}}),
                      ("home", {"app": {"path": "/srv/app"}, "home": path}),
                      ("logs.update", {"app": {"path": "/srv/app"}, "logs": {"update": path}})):
        with pytest.raises(ConfigError) as err:
            inventory.loads(yaml.safe_dump({"hosts": {"web1": {"address": "10.0.0.5", **data}}}), "hosts.yml")
        assert f"hosts.web1.{key}" in str(err.value) and "component" in str(err.value)


def test_the_signers_file_follows_the_checkouts_normalized_name():
    from fabops.host.verify import signers_path

    for path in ("/srv/app", "/srv/app/"):
        host = inventory.loads(yaml.safe_dump({"hosts": {"web1": {"address": "10.0.0.5", "app": {"path": path}}}}),
                               "hosts.yml").hosts["web1"]
        assert signers_path(host) == "/etc/fabops/app/allowed_signers"
    for raw in ("/srv/app/.", "/srv/app//", "/srv/app/./"):
        assert inventory.App(path=raw).name == "app"


def test_verify_commit_runs_in_its_own_environment_never_the_hosts():
    """hosts.yml's `env` reaches git on the host: GIT_CONFIG_COUNT/KEY/VALUE
    could set gpg.ssh.program to a program that always says Good, PATH could
    choose ssh-keygen. The check clears the environment (env -i, by its
    absolute path), sets the system's PATH and names ssh-keygen itself."""
    import shlex

    from fabops.host.git import VERIFY_PATH, verify_commit_cmd
    from fabops.shell import Cmd

    cmd = verify_commit_cmd("/srv/app", "/etc/fabops/app/allowed_signers", "a" * 40)
    assert isinstance(cmd, Cmd)
    argv = shlex.split(cmd)
    assert argv[:4] == ["/usr/bin/env", "-i", f"PATH={VERIFY_PATH}", "LC_ALL=C"] and argv[4] == "git"
    assert VERIFY_PATH == "/usr/sbin:/usr/bin:/sbin:/bin"
    configs = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    assert configs == ["gpg.format=ssh", "gpg.ssh.program=ssh-keygen",
                       "gpg.ssh.allowedSignersFile=/etc/fabops/app/allowed_signers"]
    assert argv[-3:] == ["verify-commit", "--end-of-options", "a" * 40]
    assert not any(a.startswith("GIT_") for a in argv)
