"""Counts say their noun as a person writes it (host/record.counted, the
one pluralizer): the new-user trial read `0 local change(s)`, `1
dependency rule(s)`, `@@ 51 line(s) change`."""
from fabops.host.would import Would


def test_a_secret_files_diff_counts_its_lines():
    from fabops.setup import secret_diff

    d = "--- a\n+++ b\n@@ -1 +1 @@\n-TOKEN=old\n+TOKEN=new\n"
    assert secret_diff("~/.fabops/env.sh", d) == \
        "--- ~/.fabops/env.sh\n+++ ~/.fabops/env.sh (fabops)\n@@ 2 lines changed; values not shown @@\n"
    assert "@@ 1 line changed;" in secret_diff("x", "--- a\n+++ b\n+NEW=1\n")


def test_reset_and_clean_plans_count_in_words():
    from fabops import inventory
    from fabops.maintenance.clean import CleanResult, clean_would
    from fabops.maintenance.reset import ResetPlan, reset_would

    import yaml

    host = inventory.loads(yaml.safe_dump({"hosts": {"h": {"connection": "local", "app": {"path": "~/app"}}}}),
                           "x.yml").hosts["h"]
    assert reset_would(host, ResetPlan("a" * 40, "b" * 40, [" M x"], True))[0].why.startswith("1 local change;")
    assert reset_would(host, ResetPlan("a" * 40, "b" * 40, [], True))[0].why.startswith("0 local changes;")
    assert clean_would([CleanResult("~/rec", "*.pcm", 1, 1024, True)]) == [
        Would("delete", "~/rec/*.pcm", "1 file, 1.0 KiB, older than the rule's age")]


def test_the_reset_plan_line_counts_in_words(sandbox):
    from tests.conftest import run_cli

    r = run_cli("reset", "-i", str(sandbox.inventory), "--json", env={"COLUMNS": "200"})  # no TTY: refused after the plan
    assert "0 local changes" in r.stderr and "run 1 dependency rule," in r.stderr, r.stderr
    assert "(s)" not in r.stderr, r.stderr


def test_unpin_dry_run_names_the_pin():
    from fabops.remote import unpin_plan

    assert [w.line() for w in unpin_plan("0123456789abcdef")] == [
        "would clear pin 0123456789: cron follows the branch again"]  # shortsha


def test_the_sample_apps_install_counts_in_words(tmp_path):
    import subprocess

    from tests.conftest import ROOT

    for lines, said in (("a==1\n", "installed 1 requirement\n"), ("a==1\nb==2\n", "installed 2 requirements\n")):
        (tmp_path / "requirements.txt").write_text(lines)
        r = subprocess.run(["sh", str(ROOT / "examples" / "sample-app" / "install-deps.sh")], cwd=tmp_path,
                           capture_output=True, text=True, check=True)
        assert r.stdout == "install-deps: " + said, r.stdout


def test_agent_status_when_off_says_so_and_how_to_turn_it_on(tmp_path):
    """Trial: `not running (off here: FABOPS_AGENT=0); it starts on a
    command's first use`: it does not, while it is off."""
    from tests.conftest import run_cli

    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)  # its own agent directory: none running there
    r = run_cli("agent", "status", env={"FABOPS_AGENT": "0", "XDG_RUNTIME_DIR": str(runtime)})
    assert (r.returncode, r.stdout) == (0, "agent: off here (FABOPS_AGENT=0): commands run without it; unset "
                                           "FABOPS_AGENT (or set FABOPS_AGENT=1) to use it\n"), r
    r = run_cli("agent", "status", env={"FABOPS_AGENT": "", "CI": "1", "XDG_RUNTIME_DIR": str(runtime)})
    assert r.stdout == "agent: off here (CI): commands run without it; FABOPS_AGENT=1 turns it on here\n", r
    assert "first use" not in r.stdout


def test_a_result_line_says_its_word_once():
    """`[local] = locked: locked: deploy by …` (trial): the lock message
    already starts with its result word."""
    from fabops.tasks.deploy import _said_once

    assert _said_once("locked", "locked: deploy by ci@runner (pid 7)") == "locked: deploy by ci@runner (pid 7)"
    assert _said_once("deployed", "abc -> def") == "deployed: abc -> def"
    assert _said_once("aborted", None) == "aborted"
