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
