"""The crontab block is pure text: insert, update, remove, foreign lines kept byte for byte."""
import yaml

from fabops import cron, inventory

FOREIGN = "# my own jobs\nMAILTO=me@example.com\n0 4 * * * /usr/local/bin/backup.sh --all  \n\n@reboot echo hi\n"


def host(**extra):
    entry = {"app": {"path": "/home/ec2-user/voice-meeting-bot"}, "env": {"PATH": "/opt/node/bin:/usr/bin:/bin"}}
    entry.update(extra)
    return inventory.loads(yaml.safe_dump({"hosts": {"find-to-do": entry}}), "h.yml").hosts["find-to-do"]


def test_block_lines_are_exact():
    block = cron.render_block(host(), splay=30)
    lines = block.splitlines()
    assert lines[0] == "# >>> fabops voice-meeting-bot >>>" and lines[-1] == "# <<< fabops voice-meeting-bot <<<"
    assert lines[2] == (
        "*/5 * * * * cd && PATH=/opt/node/bin:/usr/bin:/bin \"$HOME\"/.fabops/voice-meeting-bot/venv/bin/fabops "
        "local-update --trigger cron --splay 30 -i \"$HOME\"/.fabops/voice-meeting-bot/host.yml "
        ">> \"$HOME\"/.fabops/voice-meeting-bot/cron.log 2>&1"
    )
    assert lines[3].startswith("*/10 * * * * ") and "health --fix --quiet" in lines[3]
    assert lines[4].startswith("@daily ") and " clean -i " in lines[4]
    assert lines[5].startswith("@weekly ") and " backup-env -i " in lines[5]
    # backup.schedule's line, with the updates' splay (issue #26)
    assert lines[6].startswith("@daily ") and " backup --splay 30 -i " in lines[6], lines[6]
    assert " backup " not in cron.render_block(host(backup={"schedule": None}), splay=30)
    assert cron.render_block(host(backup={"schedule": "15 3 * * *"})).splitlines()[6].startswith("15 3 * * * ")


def test_insert_update_remove_preserve_foreign_lines():
    h = host()
    first = cron.apply_block(FOREIGN, "voice-meeting-bot", cron.render_block(h))
    assert first.startswith(FOREIGN)
    again = cron.apply_block(first, "voice-meeting-bot", cron.render_block(h))
    assert again == first  # idempotent
    changed = cron.apply_block(first + "# after\n", "voice-meeting-bot",
                               cron.render_block(h, schedules={"update": "* * * * *"}))
    assert changed.startswith(FOREIGN) and changed.endswith("# after\n")
    assert "* * * * * cd &&" in changed and "health --fix" not in changed
    assert cron.remove_block(changed, "voice-meeting-bot") == FOREIGN + "# after\n"
    assert cron.remove_block(FOREIGN, "voice-meeting-bot") == FOREIGN


def test_no_trailing_newline_and_other_apps_blocks():
    other = "# >>> fabops other >>>\n* * * * * x\n# <<< fabops other <<<\n"
    text = cron.apply_block("0 1 * * * a", "voice-meeting-bot", cron.render_block(host()))
    assert text.startswith("0 1 * * * a\n# >>> fabops voice-meeting-bot >>>")
    both = cron.apply_block(other, "voice-meeting-bot", cron.render_block(host()))
    assert cron.remove_block(both, "voice-meeting-bot") == other


def test_percent_is_escaped_and_values_quoted():
    h = host(env={"PATH": "/odd%dir:/usr/bin"})
    line = cron.render_block(h).splitlines()[2]
    assert "/odd\\%dir" in line and line.count("%") == line.count("\\%")


def test_remove_without_a_block_says_there_is_nothing_to_remove(sandbox, tmp_path):
    """trial #20: `cron --remove` on a crontab with no fabops block said
    `crontab: ok`, which reads as if a block were there and kept."""
    from tests.conftest import run_cli
    from tests.test_piped_output import fake_crontab

    env = fake_crontab(tmp_path, "0 3 * * * /usr/local/bin/nightly-report\n")
    for extra in (("--dry-run",), ()):
        r = run_cli("cron", "-i", str(sandbox.inventory), "--remove", *extra, env=env)
        assert r.returncode == 0, r.stderr
        said = " ".join(r.stdout.split())  # wrapped at 80 columns
        assert said.startswith("[local] crontab: nothing to remove (no fabops block in the crontab) ("), r.stdout
        assert "the sandbox's table; your own crontab is untouched)" in said, r.stdout
