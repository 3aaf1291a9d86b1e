"""A dry run's `from` is the real run's (review3 #8): host/dry_run.py set
it from the checkout or state's deployed commit, before any adoption, so on
a host with no state yet, whose healthy HEAD the real run adopts (`from`
HEAD), the dry run said `from` null. Both take the plan's Plan.from_."""


def test_a_dry_run_goes_from_where_the_real_run_does_when_it_adopts_head(sandbox):
    sandbox.result()  # started, as the legacy scripts would have left it
    (sandbox.home / "state.json").unlink()
    (sandbox.home / "history.jsonl").unlink()
    code, dry = sandbox.result("--dry-run")
    assert (code, dry["result"]) == (0, "noop"), dry
    assert not (sandbox.home / "state.json").exists(), "a dry run writes nothing"
    code, real = sandbox.result()
    assert (code, real["result"]) == (0, "noop"), real
    assert dry["from"] == real["from"] == sandbox.head(), (dry, real)
