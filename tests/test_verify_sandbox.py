"""Only verified commits ship (#29; docs/security.md, "Verified commits")
on the local sandbox, with real git and real SSH signatures: keys made
here with ssh-keygen, commits signed with `git commit -S` (gpg.format=ssh).
A signed commit ships; an unsigned one and one signed by another key are
held (skipped_unverified, reported once, nothing restarted); a person's
`--ref X --allow-unverified` deploys one, and the history says so."""
import json
import os
import subprocess

import pytest
import yaml

from fabops.host.git import verify_commit_cmd
from fabops.host.verify import allowed_signers_text, signature_words
from tests.conftest import require
from tests.harness.sandbox import git

pytestmark = pytest.mark.unit


def keypair(base, name) -> str:
    """A new ed25519 key: its private file's path (its .pub beside it)."""
    key = base / f"{name}_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@example", "-f", str(key)],
                   check=True)
    return str(key)


def push_signed(origin, key, message: str, version: str, kind: str = "ssh") -> str:
    """A commit signed with `key` (an SSH key's file; with kind openpgp, a
    gpg key's user id), pushed; its SHA."""
    (origin.work / "VERSION").write_text(version + "\n")
    git("add", "-A", cwd=origin.work)
    git("-c", f"gpg.format={kind}", "-c", f"user.signingkey={key}", "commit", "--quiet", "-S", "-m", message,
        cwd=origin.work)
    git("push", "--quiet", "origin", origin.branch, cwd=origin.work)
    return origin.head


def test_only_commits_signed_by_an_allowed_key_ship(sandbox, tmp_path):
    box = sandbox
    code, res = box.result()
    assert (code, res["result"]) == (0, "deployed"), res
    alice, mallory = keypair(tmp_path, "alice"), keypair(tmp_path, "mallory")
    signer = open(alice + ".pub").read().strip()
    data = yaml.safe_load(box.inventory.read_text())
    data["hosts"]["local"]["verify"] = {"signers": [signer]}
    box.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    # what setup installs (root's /etc/fabops/<app>/ on a real host; a sandbox keeps it in its home)
    (box.home / "allowed_signers").write_text(allowed_signers_text([signer]))

    good = push_signed(box.origin, alice, "v2 signed by alice", "2")
    code, res = box.result()
    assert (code, res["result"], box.state["deployed"]) == (0, "deployed", good), res
    pid = box.pid()

    unsigned = box.origin.push("v3 unsigned", {"VERSION": "3\n"})
    code, dry = box.result("--dry-run")  # the same decision, said and nothing recorded
    assert (code, dry["result"]) == (1, "skipped_unverified") and "no signature" in dry["message"], dry
    code, res = box.result()
    assert (code, res["result"], res["to"]) == (1, "skipped_unverified", unsigned), res
    assert "is not signed by an allowed key" in res["message"] and "no signature" in res["message"], res
    code, again = box.result()  # the next poll: held again, not reported again
    assert again["result"] == "skipped_unverified" and again["message"].endswith("(already reported)"), again
    assert [r["to"] for r in box.history() if r["result"] == "skipped_unverified"] == [unsigned]

    forged = push_signed(box.origin, mallory, "v4 signed by mallory", "4")
    code, res = box.result()
    assert (code, res["result"], res["to"]) == (1, "skipped_unverified", forged), res
    # git's `Good "git" signature …; No principal matched.` read as a pass: the reason says what it means
    assert "(signed by a key not in allowed_signers (SHA256:" in res["message"], res
    assert box.pid() == pid and box.head() == good and box.state["deployed"] == good  # nothing restarted

    # a person's deploy of it is refused; with --ref and --allow-unverified it ships, and is recorded
    code, res = box.result("--trigger", "deploy")
    assert (code, res["result"]) == (2, "aborted") and "--allow-unverified" in res["message"], res
    code, res = box.result("--trigger", "deploy", "--ref", forged, "--allow-unverified", "--actor", "ops@laptop")
    assert res["result"] == "deployed" and box.state["deployed"] == forged, res
    (rec,) = [r for r in box.history() if r.get("run_id") == res["run_id"]]
    assert rec["actor"] == "ops@laptop" and any("--allow-unverified" in w for w in rec["warnings"]), rec


def test_allow_unverified_needs_ref(sandbox):
    r = sandbox.update("--allow-unverified")
    assert r.returncode == 64 and "--allow-unverified needs --ref COMMIT" in r.stdout, r.stdout


def test_an_unverified_deploy_never_installs_or_runs_the_settings_it_sends(sandbox, tmp_path):
    """#29's trust boundary (docs/security.md, "Verified commits"): CI
    keeps hosts.yml in the app's repository, so a push that edits it
    sends its settings with the deploy of its own commit. The deploy that
    verification refuses runs with the host's installed host.yml (its own
    on_failure runs, the sent one never) and leaves it byte for byte; a
    signed commit's deploy installs the settings it sends and acts with
    them in the same run."""
    from fabops import inventory
    from fabops.deploy import host_yml
    from tests.conftest import run_cli

    box = sandbox
    code, res = box.result()
    assert (code, res["result"]) == (0, "deployed"), res
    alice = keypair(tmp_path, "alice")
    signer = open(alice + ".pub").read().strip()
    (box.home / "allowed_signers").write_text(allowed_signers_text([signer]))
    own, evil, smoke = tmp_path / "own-failure", tmp_path / "evil-failure", tmp_path / "smoke"

    def settings(**hooks) -> str:
        data = yaml.safe_load(box.inventory.read_text())
        data["hosts"]["local"].update(verify={"signers": [signer]}, hooks=hooks)
        return host_yml(inventory.from_data(data).hosts["local"])

    installed = settings(on_failure=f"touch {own}")  # what setup installed
    (box.home / "host.yml").write_text(installed)

    def deploy(sent_text: str, *args):
        sent = tmp_path / "run.host.yml"
        sent.write_text(sent_text)
        r = run_cli("local-update", "-i", str(sent), "-H", "local", "--install-config", str(sent), "--json",
                    "--trigger", "deploy", "--actor", "ci@runner", *args, timeout=120)
        return r.returncode, json.loads(r.stdout)["hosts"]["local"]

    unsigned = box.origin.push("v2 unsigned, its hosts.yml adds a hook", {"VERSION": "2\n"})
    hostile = settings(on_failure=f"touch {evil}")
    line = (f"host.yml: this deploy's settings were not installed: {unsigned[:10]} is not verified; the run "
            "used the host's own host.yml")
    code, dry = deploy(hostile, "--dry-run")
    assert (code, dry["result"]) == (2, "would_abort") and any(w.startswith(line) for w in dry["warnings"]), dry
    code, res = deploy(hostile)
    assert (code, res["result"]) == (2, "aborted") and "--allow-unverified" in res["message"], res
    assert [w for w in res["warnings"] if w.startswith("host.yml:")] == [line + ' (docs/security.md, '
                                                                          '"Verified commits")'], res["warnings"]
    assert not evil.exists() and own.exists()  # the host's own on_failure ran, the sent one never
    assert (box.home / "host.yml").read_text() == installed  # byte for byte
    assert box.history()[-1]["warnings"] == res["warnings"]

    signed = push_signed(box.origin, alice, "v3 signed, its hosts.yml adds a smoke test", "3")
    changed = settings(on_failure=f"touch {own}", after_deploy=f"touch {smoke}")
    code, res = deploy(changed)
    assert (code, res["result"], box.state["deployed"]) == (0, "deployed", signed), res
    assert smoke.exists() and not [w for w in res["warnings"] if w.startswith("host.yml:")], res
    assert (box.home / "host.yml").read_text() == changed


def test_cis_settings_are_installed_only_from_the_target_itself(sandbox, tmp_path):
    """A CI deploy sends the hosts.yml of the commit it checked out
    (--settings-from): on a host that requires signed commits they are
    installed only when that commit is the verified target. A re-run of an
    unsigned commit's job after a signed one landed ships the signed
    target with the host's own settings, and says why."""
    from fabops import inventory
    from fabops.deploy import host_yml
    from tests.conftest import run_cli

    box = sandbox
    assert box.result()[1]["result"] == "deployed"
    alice = keypair(tmp_path, "alice")
    signer = open(alice + ".pub").read().strip()
    (box.home / "allowed_signers").write_text(allowed_signers_text([signer]))
    marker = tmp_path / "sent-hook-ran"

    def settings(**hooks) -> str:
        data = yaml.safe_load(box.inventory.read_text())
        data["hosts"]["local"].update(verify={"signers": [signer]}, hooks=hooks)
        return host_yml(inventory.from_data(data).hosts["local"])

    installed = settings()
    (box.home / "host.yml").write_text(installed)
    unsigned = box.origin.push("v2 unsigned: its hosts.yml adds a hook", {"VERSION": "2\n"})
    signed = push_signed(box.origin, alice, "v3 signed, reverting v2's hosts.yml", "3")
    sent = tmp_path / "run.host.yml"
    sent.write_text(settings(after_deploy=f"touch {marker}"))

    def ci(source: str):
        r = run_cli("local-update", "-i", str(sent), "-H", "local", "--install-config", str(sent), "--json",
                    "--trigger", "ci", "--actor", "ci@runner", "--settings-from", source, timeout=120)
        assert r.stdout.startswith("{"), (r.returncode, r.stdout, r.stderr)
        return r.returncode, json.loads(r.stdout)["hosts"]["local"]

    code, res = ci(unsigned)  # the unsigned commit's job, re-run: the target is origin's signed head
    # deployed, with a warning (exit 1: docs/errors.md): its settings were not installed
    assert (code, res["result"], box.state["deployed"]) == (1, "deployed", signed), res
    line = (f"host.yml: this deploy's settings were not installed: CI's hosts.yml comes from {unsigned[:10]}, "
            f"not from the target {signed[:10]}")
    assert any(w.startswith(line) for w in res["warnings"]), res["warnings"]
    assert not marker.exists() and (box.home / "host.yml").read_text() == installed
    code, res = ci(signed)  # the signed commit's own job: its settings are installed (a noop otherwise)
    assert code == 0 and not [w for w in res["warnings"] if w.startswith("host.yml:")], res
    assert (box.home / "host.yml").read_text() == sent.read_text()


def test_the_commit_an_inventory_came_from_is_its_clean_checkouts_head(tmp_path):
    from fabops.deploy import inventory_commit

    inv = tmp_path / "repo" / "hosts.yml"
    assert inventory_commit(str(tmp_path / "nowhere.yml")) is None  # no git checkout
    inv.parent.mkdir()
    git("init", "-q", cwd=inv.parent)
    inv.write_text("hosts: {}\n")
    assert inventory_commit(str(inv)) is None  # no commit yet
    git("add", "hosts.yml", cwd=inv.parent)
    git("-c", "user.name=t", "-c", "user.email=t@example", "commit", "-q", "-m", "inv", cwd=inv.parent)
    head = git("rev-parse", "HEAD", cwd=inv.parent).strip()
    assert inventory_commit(str(inv)) == head
    inv.write_text("hosts: {x: {}}\n")
    assert inventory_commit(str(inv)) is None  # changed since: not that commit's
    other = inv.parent / "other.yml"
    other.write_text("hosts: {}\n")
    assert inventory_commit(str(other)) is None  # untracked
    # an edit hidden from `git status` is still not that commit's
    inv.write_text("hosts: {}\n")
    assert inventory_commit(str(inv)) == head
    git("update-index", "--skip-worktree", "hosts.yml", cwd=inv.parent)
    inv.write_text("hosts: {evil: {}}\n")
    assert inventory_commit(str(inv)) is None
    # a tracked symlink to a file elsewhere is no commit's hosts.yml
    outside = tmp_path / "outside.yml"
    outside.write_text("hosts: {}\n")
    link = inv.parent / "linked.yml"
    link.symlink_to(outside)
    git("add", "linked.yml", cwd=inv.parent)
    git("-c", "user.name=t", "-c", "user.email=t@example", "commit", "-q", "-m", "link", cwd=inv.parent)
    assert inventory_commit(str(link)) is None


# --- OpenPGP signers (docs/security.md, "OpenPGP keys"): keys made here with gpg in a GnuPG home of the test's,
# commits signed with `git commit -S` (gpg), the files written by setup's own item on the sandbox, and the
# check run by gpgv through the wrapper, with no GnuPG home of the checking side's at all
@pytest.fixture
def gnupg(tmp_path, monkeypatch):
    """A signing GnuPG home (its agent stopped at the end), and a key maker:
    `openpgp BASE64 comment` for hosts.yml, and the key's fingerprint."""
    import base64
    import shutil

    require(bool(shutil.which("gpg") and shutil.which("gpgv")),
            "gpg and gpgv are not installed (.ci/run's apt line installs gnupg and gpgv)")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))

    def make(name):
        subprocess.run(["gpg", "-q", "--batch", "--passphrase", "", "--quick-gen-key", f"{name} <{name}@example>",
                        "ed25519", "sign", "never"], check=True, capture_output=True)
        data = subprocess.run(["gpg", "--export", f"{name}@example"], check=True, capture_output=True).stdout
        return f"openpgp {base64.b64encode(data).decode()} {name}@example"

    yield make
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], capture_output=True)


def push_gpg_signed(origin, name, message: str, version: str) -> str:
    return push_signed(origin, f"{name}@example", message, version, kind="openpgp")


def setup_verify(box, signers, monkeypatch):
    """setup's own item on the sandbox (its files in the sandbox's home,
    written as you): the new signers accepted, as --accept-signers does."""
    from invoke import Context

    from fabops import inventory, setup
    from fabops.target import Target

    data = yaml.safe_load(box.inventory.read_text())
    data["hosts"]["local"]["verify"] = {"signers": signers}
    box.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    host = inventory.load(str(box.inventory)).hosts["local"]
    run = setup._Setup(Target(Context(), host.name, host.home), host, check=False, yes=False, offline=True,
                       replace_units=False, splay=30, accept_signers=True)
    items = list(setup._verify(run))
    return [i.status for i in items], items


def test_only_commits_signed_by_an_allowed_openpgp_key_ship(sandbox, gnupg, monkeypatch):
    box = sandbox
    code, res = box.result()
    assert (code, res["result"]) == (0, "deployed"), res
    alice, mallory = gnupg("alice"), gnupg("mallory")
    statuses, items = setup_verify(box, [alice], monkeypatch)
    assert statuses == ["changed"] * 3 and "+OpenPGP key " in items[1].diff, items and os.access(box.home / "gpgv-for-git", os.X_OK)

    good = push_gpg_signed(box.origin, "alice", "v2 signed by alice", "2")
    code, res = box.result()
    assert (code, res["result"], box.state["deployed"]) == (0, "deployed", good), res
    # the status lines reached git through the wrapper: git's own check passed, and says whose key
    # git's own check through the wrapper, as the run made it: gpgv's status lines reached git (exit 0),
    # and its words name the signer and the key
    check = subprocess.run(verify_commit_cmd(str(box.app), str(box.home / "allowed_signers"), good), shell=True,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert signature_words(True, check.stderr).startswith("signed by alice <alice@example> (OpenPGP key "), check
    pid = box.pid()

    unsigned = box.origin.push("v3 unsigned", {"VERSION": "3\n"})
    code, res = box.result()
    assert (code, res["result"], res["to"]) == (1, "skipped_unverified", unsigned), res
    assert "no signature" in res["message"], res

    forged = push_gpg_signed(box.origin, "mallory", "v4 signed by mallory", "4")
    code, res = box.result()
    assert (code, res["result"], res["to"]) == (1, "skipped_unverified", forged), res
    fpr = subprocess.run(["gpg", "--with-colons", "--list-keys", "mallory@example"], capture_output=True,
                         text=True).stdout.split("fpr:::::::::")[1].split(":")[0]
    assert f"signed by a key not in allowed_signers ({fpr})" in res["message"], res
    assert box.pid() == pid and box.head() == good and box.state["deployed"] == good  # nothing restarted

    # mallory's key added by setup: the held commit ships on the next poll
    statuses, items = setup_verify(box, [alice, mallory], monkeypatch)
    assert statuses == ["ok", "changed", "ok"] and f"+OpenPGP key {fpr}" in items[1].diff, items
    code, res = box.result()
    assert (code, res["result"], box.state["deployed"]) == (0, "deployed", forged), res
