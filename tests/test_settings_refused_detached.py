"""#29: sent settings refused before the run starts (a home setup never
set up, on a host that requires signed commits: tasks/update._refuse_unset_home,
docs/security.md "When a deploy's settings are installed") reach the
laptop that follows the detached run as exit 78 and their message at
once. They were raised before the run's event file had a line, so a
deploy over SSH waited deploy.STARTUP_WINDOW (20 s) for a first event,
then said it lost contact (exit 3)."""
import os
import time

import pytest
import yaml

from fabops import deploy, errors, inventory


def test_a_deploy_to_a_home_setup_never_set_up_is_refused_78_at_once(sandbox, tmp_path, monkeypatch):
    """The host side as deploy starts it (deploy.local_update_argv: -i and
    --install-config the run's runs/<id>.host.yml, --run-id), in this
    process so SIGNERS_DIR can point at one app's allowed_signers; the
    laptop side reads the run's event file as it follows one (the
    sandbox's connection: local host runs without --install-config, so
    the refusal never arises on its own detached path)."""
    from fabops.deploy import host_yml
    from fabops.host import verify
    from fabops.host.events import new_run_id
    from fabops.paths import HostPaths
    from fabops.tasks import update

    monkeypatch.setattr(verify, "SIGNERS_DIR", str(tmp_path / "etc"))
    (tmp_path / "etc" / "other-app").mkdir(parents=True)
    (tmp_path / "etc" / "other-app" / "allowed_signers").write_text("x\n")
    data = yaml.safe_load(sandbox.inventory.read_text())
    new_home = tmp_path / "newhome"
    data["hosts"]["local"]["home"] = str(new_home)
    data["hosts"]["local"]["hooks"] = {"on_failure": f"touch {tmp_path / 'pwned'}"}
    sent = inventory.from_data(data).hosts["local"]
    run_id = new_run_id()
    paths = HostPaths.for_home(str(new_home))
    # what start_detached_cmd leaves before the run starts: the settings, an empty event file
    (new_home / "runs").mkdir(parents=True)
    config = paths.run_file(run_id, "host.yml")
    with open(config, "w", encoding="utf-8") as fh:
        fh.write(host_yml(sent))
    open(paths.run_events(run_id), "w").close()

    started = time.monotonic()
    with pytest.raises(errors.ConfigError) as host_side:
        update.local_update.body(None, hosts="local", inventory=config, install_config=config, run_id=run_id,
                                 trigger="deploy", actor="ci@runner")
    assert host_side.value.exit_code == errors.CONFIG

    def follow_the_file(c, host, opts, on_event):
        outcome = deploy.DeployOutcome(host.name, run_id)
        event = deploy._follow_file(paths.run_events(run_id), lambda: True, on_event, opts.watch)
        assert event is not None, "no result in the run's event file: the laptop would wait and say it lost contact"
        deploy._finish(host, opts, outcome, event)
        return outcome

    monkeypatch.setattr(deploy, "_deploy_host", follow_the_file)
    seen = []
    with pytest.raises(errors.ConfigError) as laptop:
        deploy.deploy_host(None, sent, deploy.DeployOptions(actor="ci@runner"), seen.append)
    assert time.monotonic() - started < deploy.STARTUP_WINDOW / 2
    said = str(laptop.value)
    assert laptop.value.exit_code == errors.CONFIG and said == f"local: {paths.host_yml}: {host_side.value.problem}"
    assert "requires signed commits" in said and "run setup for this host" in said
    assert [e["kind"] for e in seen] == ["result", "end"] and seen[0]["exit_code"] == errors.CONFIG
    # refused before the lock: nothing installed, nothing run, no hook
    assert not (new_home / "host.yml").exists() and not os.path.exists(paths.lock)
    assert not (tmp_path / "pwned").exists()
