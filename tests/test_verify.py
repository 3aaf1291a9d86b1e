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
KEY_FP = "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"  # ssh-keygen -lf's
# two ed25519 OpenPGP keys made with gpg --quick-gen-key, as `gpg --export | base64 -w0` writes them,
# and their fingerprints as gpg --with-colons --list-keys printed them
PGP_A = ("openpgp mDMEaxcR6xYJKwYBBAHaRw8BAQdAIjon5YwQE3ZFw4lluAOQr8B7Lk+Mjeid0Z6tgf+Dj+e0C0FsaWNlIDxhQHg+iJAEExYIADgWIQ"
         "SUoy33QbA9rIgo0muZ65xYgLZIuAUCaxcR6wIbAwULCQgHAgYVCgkICwIEFgIDAQIeAQIXgAAKCRCZ65xYgLZIuHIrAQCN3RDM2NBcsUWKBI5o"
         "aRe5l34NwGk8BPe+FdjGYK1PNQEApTFmxV7fsPvZGHaaE8vpK530f3XMugKg2O7w3f4n0AM= alice@example")
PGP_A_FP = "94A32DF741B03DAC8828D26B99EB9C5880B648B8"
PGP_B = ("openpgp mDMEaxcR6xYJKwYBBAHaRw8BAQdApCF4pqh5GQiL3XmkrzdxDPemVST8tNVoflGslT+67Yy0CUJvYiA8YkB4PoiQBBMWCAA4FiEEfDpk"
         "ZYdV/CFbAXq1KoPavpCg190FAmsXEesCGwMFCwkIBwIGFQoJCAsCBBYCAwECHgECF4AACgkQKoPavpCg193DagEAo4SXQ79BXwagLYP4Ee1lGJBS"
         "0aydHgYVUg1NwjzWqTQBAMyVkxk27n4u1p/m07t3AghnCiAbzvIlak06urLJ2eQD")
PGP_B_FP = "7C3A64658755FC215B017AB52A83DABE90A0D7DD"


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
    assert "at least one SSH or OpenPGP public key" in str(err.value)
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
    """What setup's item reads: the host, the deploy user's shell and
    root's (their answers given: the installed files), and the file writer
    (recorded)."""

    def __init__(self, host, answers, check=False, accept=False, ask=None):
        self.host, self.answers, self.written = host, answers, []
        self.dt = self.t = self
        self.check, self.accept_signers, self.ask_signers = check, accept, ask

    def output(self, cmd) -> str:
        text = str(cmd)
        return next((out for key, out in self.answers.items() if key in text), "@@absent\n")

    def file(self, name, path, text, **kw):
        self.written.append((path, text, kw))
        from fabops.setup import ItemResult

        return ItemResult(name, "changed", path)


@pytest.fixture
def keyrings(monkeypatch):
    """setup's keyring writes (put_file with decode), recorded."""
    import base64

    written = []
    monkeypatch.setattr("fabops.setup.put_file", lambda t, host, path, content, **kw: written.append(
        (path, base64.b64decode(content), kw)))
    return written


def test_setup_refuses_verify_where_git_cannot_check_ssh_signatures():
    from fabops.errors import CONFIG
    from fabops.setup import SetupReport, _verify

    run = FakeRun(load({"signers": [KEY, PGP_A]}), {"git --version": "git version 2.30.2\n"}, accept=True)
    (item,) = list(_verify(run))
    assert item.status == "refused" and "git 2.30 cannot check SSH signatures" in item.message, item
    # which key, by its fingerprint and comment; the OpenPGP one is not named
    assert f"lists 1 SSH key ({KEY_FP} (alice@example))" in item.message and PGP_A_FP not in item.message, item
    assert SetupReport("web1", [item]).exit_code == CONFIG == 78 and run.written == []


def test_setup_installs_openpgp_keys_where_git_is_2_30(keyrings):
    """bullseye's git 2.30 checks OpenPGP signatures: setup installs them
    (an empty SSH file, the keyring, the gpgv wrapper), root's."""
    from fabops.host.verify import openpgp_bytes
    from fabops.setup import _verify

    run = FakeRun(load({"signers": [PGP_A]}), {"git --version": "git version 2.30.2\n"}, accept=True)
    items = list(_verify(run))
    assert [i.status for i in items] == ["changed"] * 3, items
    (ssh, _, ssh_kw), (program, text, kw) = run.written
    assert ssh == "/etc/fabops/app/allowed_signers" and ssh_kw == {"mode": "0644", "root": True}
    assert program == "/etc/fabops/app/gpgv-for-git" and kw == {"mode": "0755", "root": True}
    assert text.startswith("#!/bin/sh\n# Managed by fabops") and "exec gpgv --keyring /etc/fabops/app/allowed_signers.gpg" in text
    ((path, data, pkw),) = keyrings
    assert path == "/etc/fabops/app/allowed_signers.gpg" and data == openpgp_bytes(PGP_A)
    assert pkw == {"mode": "0644", "root": True, "decode": True}
    assert f"+OpenPGP key {PGP_A_FP}" in items[1].diff


def test_setup_refuses_openpgp_keys_without_gpgv(keyrings):
    from fabops.setup import _verify

    run = FakeRun(load({"signers": [PGP_A]}), {"git --version": "git version 2.39.5\nno gpgv\n"}, accept=True)
    (item,) = list(_verify(run))
    assert item.status == "refused" and "gpgv is not installed" in item.message and run.written == [] == keyrings


def test_setup_writes_the_allowed_signers_file_as_root(keyrings):
    from fabops.setup import _verify

    run = FakeRun(load({"signers": [KEY]}), {"git --version": "git version 2.39.5\n"}, accept=True)
    list(_verify(run))
    (path, text, kw), _program = run.written
    assert path == "/etc/fabops/app/allowed_signers" and kw == {"mode": "0644", "root": True}
    assert 'alice@example namespaces="git" ssh-ed25519 ' in text
    # one `Managed by fabops` line, setup's: the file's own said it again (#29's trial)
    assert text.count("# Managed by fabops") == 1 and text.startswith("# Managed by fabops"), text
    assert keyrings[0][1] == b""  # no OpenPGP key: an empty keyring, so none is good


# --- new signers need a person's yes (setup_signers.confirm_problem)
INSTALLED_SSH = f'# Managed by fabops\nalice@example namespaces="git" {KEY.rsplit(" ", 1)[0]}\n'


def test_a_new_signer_is_refused_without_a_terminal_and_named(keyrings):
    from fabops.setup import _verify

    run = FakeRun(load({"signers": [KEY, PGP_B]}), {"git --version": "git version 2.39.5\n", "cat": INSTALLED_SSH})
    (item,) = list(_verify(run))
    # an OpenPGP key goes into the keyring, and the file named is that one (#29's trial)
    assert item.status == "refused" and f"would add {PGP_B_FP} to /etc/fabops/app/allowed_signers.gpg" in item.message
    assert "--accept-signers" in item.message and KEY_FP not in item.message and run.written == [] == keyrings
    assert "holds the commits only they signed" in item.message  # the SSH file is there: its signers still ship


def test_a_first_refused_signer_says_the_host_holds_every_commit(keyrings):
    """#29's trial: host.yml has `verify:` once setup refused its signers
    (written first, so the host never ships unsigned commits after a person
    asked for signed ones), and without the file cron held every update
    with no word from setup why."""
    from fabops.setup import _verify

    run = FakeRun(load({"signers": [KEY, PGP_A]}), {"git --version": "git version 2.39.5\n"})
    (item,) = list(_verify(run))
    assert item.status == "refused" and run.written == [] == keyrings
    assert f"would add {KEY_FP} (alice@example) to /etc/fabops/app/allowed_signers; " in item.message
    assert f"{PGP_A_FP} (alice@example) to /etc/fabops/app/allowed_signers.gpg" in item.message
    assert "until setup installs the signers, this host holds every new commit" in item.message


def test_the_signers_question_is_one_key_a_line_wrapped_to_the_terminal():
    from fabops.setup_signers import question
    from fabops.tasks.setup import prompt

    ssh, pgp = f"{KEY_FP} (trial@laptop)", f"{PGP_A_FP} (Trial User <trial@laptop.example>)"
    asked = prompt(question("local", {"/etc/fabops/find-to-do/allowed_signers": [ssh],
                                      "/etc/fabops/find-to-do/allowed_signers.gpg": [pgp]}), 80)
    lines = asked.split("\n")
    assert all(len(ln) <= 80 for ln in lines) and asked.endswith("? [y/N] "), asked
    assert f"[local]     - {ssh}" in lines and f"[local]     - {PGP_A_FP} (Trial User" in lines, asked
    assert "[local]   into /etc/fabops/find-to-do/allowed_signers.gpg:" in lines, asked
    assert "[local] add them? [y/N] " == lines[-1]


def test_a_terminal_is_asked_and_a_no_writes_nothing(keyrings):
    from fabops.setup import _verify

    asked = []
    for answer, written in ((False, 0), (True, 2)):
        run = FakeRun(load({"signers": [PGP_A]}), {"git --version": "git version 2.39.5\n"},
                      ask=lambda q, a=answer: asked.append(q) or a)
        items = list(_verify(run))
        assert len(run.written) == written, items
    assert items[0].status == "changed" and f"- {PGP_A_FP} (alice@example)\n" in asked[0]
    assert "into /etc/fabops/app/allowed_signers.gpg:" in asked[0] and "add it?" in asked[0], asked[0]


def test_check_lists_the_new_signers_and_kept_or_removed_ones_ask_nothing(keyrings):
    import base64

    from fabops.host.verify import openpgp_bytes
    from fabops.setup import _verify

    answers = {"git --version": "git version 2.39.5\n", "cat": INSTALLED_SSH,
               "base64 -w0": base64.b64encode(openpgp_bytes(PGP_A) + openpgp_bytes(PGP_B)).decode()}
    run = FakeRun(load({"signers": [KEY, PGP_A]}), answers)  # PGP_B removed, nothing added: no question
    items = list(_verify(run))
    assert [i.status for i in items] == ["changed"] * 3 and f"-OpenPGP key {PGP_B_FP}" in items[1].diff, items
    assert keyrings[0][1] == openpgp_bytes(PGP_A)
    run = FakeRun(load({"signers": [KEY, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9 bob@x"]}), answers, check=True)
    first = list(_verify(run))[0]
    assert (first.name, first.status) == ("new signers", "would change") and "(bob@x)" in first.message, first


def test_an_openpgp_signer_is_one_public_key():
    from fabops.host.verify import fingerprint, keyring_bytes, openpgp_bytes

    assert signer_problem(PGP_A) is None and load({"signers": [PGP_A, KEY]}).verify.signers == (PGP_A, KEY)
    assert fingerprint(PGP_A) == PGP_A_FP and fingerprint(KEY) == KEY_FP
    assert keyring_bytes([KEY, PGP_A, PGP_B]) == openpgp_bytes(PGP_A) + openpgp_bytes(PGP_B)
    two = "openpgp " + __import__("base64").b64encode(openpgp_bytes(PGP_A) + openpgp_bytes(PGP_B)).decode()
    assert "exactly one OpenPGP public key, not 2" in signer_problem(two)
    secret = "openpgp lFgEaxcR6xYJKwYBBAHaRw8BAQdAIjon5YwQE3ZFw4lluAOQr8B7Lk+Mjeid"  # a secret key's first bytes
    assert "SECRET" in signer_problem(secret) or "not an OpenPGP public key" in signer_problem(secret)
    for bad in ("openpgp", "openpgp !!", "openpgp AAAA", "openpgp " + PGP_A.split()[1][:40]):
        assert "OpenPGP" in signer_problem(bad), bad


def test_gpgvs_words_say_who_signed_or_whose_key_is_missing():
    fp = "7590C0D5499A96CC3F13A218F66324FDC8E721DB"
    good = (f'gpgv: Signature made Mon Dec  7 20:04:11 2026 UTC\ngpgv:                using EDDSA key {fp}\n'
            'gpgv:                issuer "a@x"\ngpgv: Good signature from "Alice <a@x>"\n')
    assert signature_words(True, good) == f"signed by Alice <a@x> (OpenPGP key {fp})"
    unknown = (f"gpgv: Signature made Mon Dec  7 20:04:11 2026 UTC\ngpgv:                using EDDSA key {fp}\n"
               "gpgv: Can't check signature: No public key\n")
    assert signature_words(False, unknown) == f"signed by a key not in allowed_signers ({fp})"


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
    assert configs == ["gpg.ssh.program=ssh-keygen",
                       "gpg.ssh.allowedSignersFile=/etc/fabops/app/allowed_signers",
                       "gpg.openpgp.program=/etc/fabops/app/gpgv-for-git", "gpg.x509.program=false"]
    assert argv[-3:] == ["verify-commit", "--end-of-options", "a" * 40]
    assert not any(a.startswith("GIT_") for a in argv)
