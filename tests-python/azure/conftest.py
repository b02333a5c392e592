"""Fixtures shared by the ARM suites: the mock binary, started per module.

The mock binary comes from SKYFLEET_MOCK_BIN (tests-python/run.sh sets it);
it runs at time_scale 0.01 with --tls (azure-core sends bearer tokens only
over https) and the clients trust its certificate through
`connection_verify`.
"""

import json
import os
import subprocess
import tempfile
import time

import pytest
from azure.core.credentials import AccessToken

TIME_SCALE = 0.01


class StaticCredential:
    """A token credential with a fixed token (the mock's ARM takes any
    bearer token; clients treat tokens as opaque)."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("pytest-token", int(time.time()) + 3600)


class Mock:
    def __init__(self, url, ca):
        self.url = url
        self.ca = ca


@pytest.fixture(scope="module")
def mock():
    binary = os.environ.get("SKYFLEET_MOCK_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail("SKYFLEET_MOCK_BIN must name the skyfleet-mock binary")
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "mock.json")
        with open(config, "w") as f:
            json.dump({"time_scale": TIME_SCALE}, f)
        ca = os.path.join(tmp, "ca.pem")
        proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--tls", "--cert-out", ca, "--config", config],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            url = proc.stdout.readline().strip()
            assert url.startswith("https://127.0.0.1:"), url
            assert os.path.exists(ca), "the mock wrote no certificate"
            yield Mock(url, ca)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
