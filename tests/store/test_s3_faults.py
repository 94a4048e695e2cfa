"""The S3 store under faults: an outage, a frozen server, a network that loses responses,
credentials in the endpoint URL. Against real SeaweedFS servers (issue 12, points 4 and 8).
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from lossy_proxy import LossyProxy
from nlfs.errors import NlfsError
from nlfs.store import Blob, ConflictError, S3Store, StoreError, open_store
from s3server import SeaweedServer


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fault_server():
    """A server of this module's own, which tests may kill, restart, freeze and thaw."""
    server = SeaweedServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_env(fault_server, no_aws_env, monkeypatch):
    """(server, uri): the environment pointed at `fault_server`, a fresh prefix, the server up."""
    if fault_server.proc is None:
        fault_server.restart()
    for name, value in fault_server.env().items():
        monkeypatch.setenv(name, value)
    bucket, prefix = fault_server.fresh_prefix()
    yield fault_server, f"s3://{bucket}/{prefix}"
    fault_server.thaw()
    if fault_server.proc is None:
        fault_server.restart()


def _in_thread(fn):
    """Start fn() in a thread; returns (thread, box) where box gets 'value' or 'error'."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


# -- the retry window --------------------------------------------------------------------------


def test_retry_window_defaults_to_minutes_and_follows_the_environment(monkeypatch):
    from nlfs.store.s3 import DEFAULT_RETRY_S, RETRY_ENV

    monkeypatch.delenv(RETRY_ENV, raising=False)
    assert S3Store("bucket").retry_s == DEFAULT_RETRY_S >= 120
    monkeypatch.setenv(RETRY_ENV, "7.5")
    assert S3Store("bucket").retry_s == 7.5
    assert S3Store("bucket", retry_s=0).retry_s == 0  # the store option wins
    assert open_store("s3://bucket/run").retry_s == 7.5
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(RETRY_ENV, bad)
        with pytest.raises(NlfsError, match=RETRY_ENV):
            open_store("s3://bucket/run")


def test_an_unreachable_endpoint_is_retried_for_the_window_then_one_line(no_aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-do-not-print")
    monkeypatch.setenv("NLFS_STORE_RETRY_S", "1")
    store = open_store("s3://some-bucket/run")
    with pytest.raises(StoreError) as info:
        store.get("state.json")
    message = str(info.value)
    assert message.startswith("cannot reach s3 endpoint") and "NLFS_STORE_RETRY_S" in message
    assert "\n" not in message and store.request_count > 1

    monkeypatch.setenv("NLFS_STORE_RETRY_S", "0")
    once = open_store("s3://some-bucket/run")
    with pytest.raises(StoreError):
        once.get("state.json")
    assert once.request_count == 1


# -- credentials in URLs (12.4) ----------------------------------------------------------------


@pytest.mark.parametrize("endpoint", [
    "http://nlfs-user:secret-in-url@127.0.0.1:{port}",
    "http://nlfs-user:secret-in-url@127.0.0.1:{port}/?X-Amz-Signature=secret-in-url",
    "http://nlfs-user:secret-in-url@no-such-host.invalid:{port}",
])
def test_credentials_in_the_endpoint_url_are_never_printed(endpoint, no_aws_env, monkeypatch, caplog):
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.format(port=_closed_port()))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-key-do-not-print")
    monkeypatch.setenv("NLFS_STORE_RETRY_S", "0.5")
    monkeypatch.setattr("nlfs.store.s3._last_warning", float("-inf"))  # warnings are one per 30 s
    monkeypatch.setattr("nlfs.store.s3._WARN_AFTER_S", 0.0)  # and only for failures that last
    store = open_store("s3://some-bucket/run")
    for call in (lambda: store.get("k"), lambda: store.put_if_absent("k", b"x"), lambda: store.list()):
        with pytest.raises(StoreError) as info:
            call()
        shown = str(info.value) + store.endpoint_url
        assert "secret" not in shown and "nlfs-user" not in shown, shown
    if "?" not in endpoint:  # botocore refuses a query in the endpoint before any request
        assert caplog.records, "the retries were not logged"
    assert not any("secret" in r.getMessage() or "nlfs-user" in r.getMessage() for r in caplog.records)


def test_credentials_in_a_store_uri_are_never_echoed():
    for uri in ("s3://nlfs-user:secret-in-url@bucket/run", "http://nlfs-user:secret-in-url@host/run"):
        with pytest.raises(NlfsError) as info:
            open_store(uri)
        assert "secret" not in str(info.value) and "nlfs-user" not in str(info.value)


# -- an outage and a frozen server ----------------------------------------------------------------


def test_calls_during_an_outage_wait_for_the_server_and_then_succeed(fault_env, monkeypatch):
    server, uri = fault_env
    monkeypatch.setenv("NLFS_STORE_RETRY_S", "120")
    store = open_store(uri)
    store.put("state.json", b"before")
    store.put("config.yaml", b"seed: 1")
    server.kill()
    calls = [
        _in_thread(lambda: open_store(uri).get("config.yaml")),
        _in_thread(lambda: open_store(uri).put_if_absent("genomes/a.json", b"g")),
        _in_thread(lambda: open_store(uri).compare_and_swap("state.json", b"after", md5(b"before"))),
    ]
    time.sleep(3)
    assert all(thread.is_alive() for thread, _ in calls), [box for _, box in calls]  # waiting, not failed
    server.restart()
    for thread, _ in calls:
        thread.join(120)
    boxes = [box for _, box in calls]
    assert [("value" in box) for box in boxes] == [True, True, True], boxes
    assert boxes[0]["value"] == Blob(b"seed: 1", md5(b"seed: 1"))
    assert boxes[1]["value"] is True and boxes[2]["value"] == md5(b"after")
    assert store.get("state.json").data == b"after" and store.get("genomes/a.json").data == b"g"


def test_a_frozen_server_costs_one_read_timeout_per_attempt_not_minutes(fault_env):
    server, uri = fault_env
    parsed = urlsplit(uri)
    store = S3Store(parsed.netloc, parsed.path.lstrip("/"), retry_s=120, read_timeout_s=1)
    store.put("k", b"v")
    before = store.request_count
    server.freeze()
    thread, box = _in_thread(lambda: store.get("k"))
    time.sleep(4)
    server.thaw()
    thread.join(60)
    assert box.get("value") == Blob(b"v", md5(b"v")), box
    assert store.request_count - before >= 2  # the first attempt timed out and was tried again


def test_past_the_window_a_frozen_server_is_one_line(fault_env):
    server, uri = fault_env
    parsed = urlsplit(uri)
    store = S3Store(parsed.netloc, parsed.path.lstrip("/"), retry_s=0, read_timeout_s=1)
    server.freeze()
    try:
        with pytest.raises(StoreError) as info:
            store.get("k")
    finally:
        server.thaw()
    assert "ReadTimeoutError" in str(info.value) and "\n" not in str(info.value)


# -- a network that loses responses ----------------------------------------------------------------


def test_lost_responses_never_turn_a_landed_write_into_an_error(s3_env, monkeypatch):
    """30% of responses dropped after the server acted: every call still reports what happened."""
    upstream = urlsplit(s3_env.endpoint_url).port
    with LossyProxy(upstream, drop=0.3, seed=12) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("NLFS_STORE_RETRY_S", "120")
        store = open_store(s3_env.uri("lossy"))
        keys = [f"genomes/{i:02d}.json" for i in range(12)]
        assert [store.put_if_absent(k, k.encode()) for k in keys] == [True] * len(keys)
        assert [store.put_if_absent(k, b"a rival") for k in keys] == [False] * len(keys)

        etag = store.compare_and_swap("state.json", b"0", None)
        for i in range(1, 13):
            etag = store.compare_and_swap("state.json", str(i).encode(), etag)
        with pytest.raises(ConflictError):
            store.compare_and_swap("state.json", b"stale", md5(b"11"))
        with pytest.raises(ConflictError):
            store.compare_and_swap("state.json", b"again", None)

        assert store.list("genomes/") == keys
        assert [store.get(k).data for k in keys] == [k.encode() for k in keys]
        store.put("reports/index.html", b"<html>")
        store.delete("reports/index.html")
        assert not store.exists("reports/index.html")
        assert proxy.dropped >= 10, (proxy.dropped, proxy.forwarded)  # the faults really happened
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env.endpoint_url)  # straight to the server
    assert open_store(s3_env.uri("lossy")).get("state.json") == Blob(b"12", etag)
