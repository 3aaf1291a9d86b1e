"""Trial (#24's fresh-clone trial, item 1): `deploy --ref nosuchref2`
printed its usage error, exit 64, but counted `deploy aborted` in
state.json's metrics, with `last.deploy = {code: 64}`. A command-line
error is no run of the host's: it writes nothing there and counts
nothing (docs/metrics.md, "Which runs count"). The same for rollback's
--to. On the local sandbox, through the real console script."""
WANT = "no such branch, tag or commit on origin"


def test_an_unknown_ref_or_to_writes_and_counts_nothing(sandbox):
    code, _ = sandbox.result()
    assert code == 0
    before = (sandbox.home / "state.json").read_text()
    runs = len(sandbox.history())
    for trigger, flag in (("deploy", "--ref"), ("rollback", "--to")):
        r = sandbox.update("--trigger", trigger, "--ref", "nosuchref2")
        assert r.returncode == 64, r.stdout + r.stderr
        assert f"{flag} nosuchref2: {WANT}" in r.stdout, r.stdout
    assert (sandbox.home / "state.json").read_text() == before
    assert len(sandbox.history()) == runs
    metrics = sandbox.state.get("metrics") or {}
    assert "aborted" not in str(metrics), metrics
