"""The ObjectStore contract, run against both backends (a directory and SeaweedFS S3).

Includes the multi-process races the run layout relies on, and the S3 failure messages.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import pickle
import socket
import time
from pathlib import Path

import pytest

from nlfs.errors import NlfsError
from nlfs.store import (
    Blob,
    ConflictError,
    DirectoryStore,
    NotFoundError,
    ObjectStore,
    S3Store,
    StoreError,
    open_store,
)

# fork: workers start in milliseconds and inherit the test's environment (AWS_ENDPOINT_URL...).
# They reopen the store by URI, as pods do, and S3Store rebuilds its boto3 client after a fork.
# (forkserver would hand them the environment of whenever its server started: wrong endpoint.)
MP = mp.get_context("fork")
WRITERS = 8
INCREMENTS = 25

BAD_KEYS = ["", "/abs", "a//b", "a/", "../x", "a/../b", "a/./b", ".hidden", "a/.lock", "a\\b", "a\x00b"]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -- single-process contract ---------------------------------------------------------------------


def test_get_missing_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError) as info:
        store.get("state.json")
    assert "state.json" in str(info.value)
    assert not store.exists("state.json")
    assert store.list() == []


def test_get_or_none_is_get_that_answers_none_for_a_missing_key(store: ObjectStore) -> None:
    assert store.get_or_none("state.json") is None
    etag = store.put("state.json", b"{}")
    assert store.get_or_none("state.json") == Blob(b"{}", etag)


def test_put_get_roundtrip_with_md5_etag(store: ObjectStore) -> None:
    etag = store.put("genomes/abc.json", b'{"x": 1}')
    assert etag == md5(b'{"x": 1}')  # same etag on both backends: S3 single-part is md5
    assert store.get("genomes/abc.json") == Blob(b'{"x": 1}', etag)
    assert store.exists("genomes/abc.json")


def test_put_overwrites_and_changes_etag(store: ObjectStore) -> None:
    first = store.put("state.json", b"one")
    second = store.put("state.json", b"two")
    assert first != second
    assert store.get("state.json") == Blob(b"two", second)


def test_empty_and_binary_data(store: ObjectStore) -> None:
    payload = bytes(range(256)) * 4
    store.put("bin", payload)
    store.put("empty", b"")
    assert store.get("bin").data == payload
    assert store.get("empty") == Blob(b"", md5(b""))


def test_delete(store: ObjectStore) -> None:
    store.put("a/b.json", b"1")
    store.delete("a/b.json")
    assert not store.exists("a/b.json")
    with pytest.raises(NotFoundError):
        store.get("a/b.json")
    store.delete("a/b.json")  # deleting what is gone is fine, as in S3
    store.delete("never/was.json")


def test_list_by_prefix_sorted(store: ObjectStore) -> None:
    keys = ["state.json", "genomes/b2.json", "genomes/a1.json", "batches/00000010.json",
            "batches/00000002.json", "results/prefilter/a1.json", "results/final-c10/b2.json",
            "genomesx.json"]
    for key in keys:
        store.put(key, key.encode())
    assert store.list() == sorted(keys)
    assert store.list("") == sorted(keys)
    assert store.list("genomes/") == ["genomes/a1.json", "genomes/b2.json"]
    assert store.list("genomes") == ["genomes/a1.json", "genomes/b2.json", "genomesx.json"]
    assert store.list("genomes/a") == ["genomes/a1.json"]
    assert store.list("batches/") == ["batches/00000002.json", "batches/00000010.json"]
    assert store.list("results/") == ["results/final-c10/b2.json", "results/prefilter/a1.json"]
    assert store.list("results/prefilter/") == ["results/prefilter/a1.json"]
    assert store.list("nothing/") == []
    assert store.list("state.json") == ["state.json"]


def test_list_hides_temp_and_lock_files(store: ObjectStore) -> None:
    store.put("state.json", b"0")
    store.compare_and_swap("state.json", b"1", store.get("state.json").etag)
    store.put_if_absent("genomes/a.json", b"g")
    store.put_if_absent("genomes/a.json", b"g2")
    store.delete("genomes/a.json")
    store.put("genomes/b.json", b"g")
    if isinstance(store, DirectoryStore):
        # What a writer killed mid-write leaves behind.
        (store.root / "genomes" / ".b.json.1234abcd.tmp").write_bytes(b"partial")
        (store.root / ".hidden-dir").mkdir()
        (store.root / ".hidden-dir" / "x.json").write_bytes(b"{}")
        assert any(p.name.endswith(".lock") for p in (store.root / "genomes").iterdir())
    assert store.list() == ["genomes/b.json", "state.json"]
    assert store.list("genomes/") == ["genomes/b.json"]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_invalid_keys_rejected(store: ObjectStore, key: str) -> None:
    calls = [
        lambda: store.get(key),
        lambda: store.put(key, b"x"),
        lambda: store.put_if_absent(key, b"x"),
        lambda: store.compare_and_swap(key, b"x", None),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ]
    for call in calls:
        with pytest.raises(NlfsError) as info:
            call()
        assert not isinstance(info.value, StoreError)  # a caller bug, not a store problem
        assert "\n" not in str(info.value)
    assert store.list() == []


@pytest.mark.parametrize("prefix", ["/", "/a", "a//", "../", "a/../b/", ".x"])
def test_invalid_list_prefix_rejected(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(NlfsError):
        store.list(prefix)


def test_put_if_absent_creates_once(store: ObjectStore) -> None:
    assert store.put_if_absent("results/s/a.json", b"first") is True
    assert store.put_if_absent("results/s/a.json", b"second") is False
    assert store.get("results/s/a.json") == Blob(b"first", md5(b"first"))


def test_compare_and_swap(store: ObjectStore) -> None:
    etag0 = store.compare_and_swap("state.json", b"v0", None)  # None: create only if absent
    assert etag0 == md5(b"v0")
    with pytest.raises(ConflictError):
        store.compare_and_swap("state.json", b"again", None)
    etag1 = store.compare_and_swap("state.json", b"v1", etag0)
    assert store.get("state.json") == Blob(b"v1", etag1)

    with pytest.raises(ConflictError) as info:
        store.compare_and_swap("state.json", b"stale write", etag0)
    assert "state.json" in str(info.value)
    assert store.get("state.json") == Blob(b"v1", etag1)  # the loser changed nothing

    with pytest.raises(ConflictError):
        store.compare_and_swap("missing.json", b"x", etag1)  # an etag never matches absence
    assert not store.exists("missing.json")


def test_conflict_and_not_found_are_store_errors() -> None:
    assert issubclass(NotFoundError, StoreError) and issubclass(ConflictError, StoreError)
    assert issubclass(StoreError, NlfsError)


def test_store_pickles_for_worker_processes(store: ObjectStore) -> None:
    store.put("k", b"v")
    copy = pickle.loads(pickle.dumps(store))
    assert type(copy) is type(store) and copy.uri == store.uri
    assert copy.get("k").data == b"v"


# -- races across processes ----------------------------------------------------------------------


def _cas_incrementer(uri: str, key: str, count: int, go: mp.Event, out: mp.Queue) -> None:
    store = open_store(uri)
    conflicts = 0
    go.wait()
    for _ in range(count):
        while True:
            blob = store.get(key)
            try:
                store.compare_and_swap(key, str(int(blob.data) + 1).encode(), blob.etag)
                break
            except ConflictError:
                conflicts += 1
    out.put(conflicts)


def _creator(uri: str, key: str, mode: str, me: int, go: mp.Event, out: mp.Queue) -> None:
    store = open_store(uri)
    data = f"writer-{me}".encode()
    go.wait()
    if mode == "put_if_absent":
        won = store.put_if_absent(key, data)
    else:
        try:
            store.compare_and_swap(key, data, None)
            won = True
        except ConflictError:
            won = False
    out.put((me, won))


def _run_all(targets: list[tuple]) -> list:
    """Start every worker, release them at once, and collect one result from each."""
    go, out = MP.Event(), MP.Queue()
    procs = [MP.Process(target=fn, args=(*args, go, out)) for fn, *args in targets]
    for p in procs:
        p.start()
    go.set()
    try:
        results = [out.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return results


def test_race_cas_increments_are_never_lost(store: ObjectStore) -> None:
    store.put("counter", b"0")
    conflicts = _run_all([(_cas_incrementer, store.uri, "counter", INCREMENTS)] * WRITERS)
    assert store.get("counter").data == str(WRITERS * INCREMENTS).encode()
    print(f"{store.uri}: {sum(conflicts)} conflicts retried")  # contention varies; the total is the invariant


@pytest.mark.parametrize("mode", ["put_if_absent", "cas_absent"])
def test_race_create_only_has_one_winner(store: ObjectStore, mode: str) -> None:
    results = _run_all([(_creator, store.uri, "genomes/0123abcd.json", mode, i) for i in range(WRITERS)])
    winners = [me for me, won in results if won]
    assert len(winners) == 1, results
    assert store.get("genomes/0123abcd.json").data == f"writer-{winners[0]}".encode()
    assert store.list() == ["genomes/0123abcd.json"]


# -- open_store ----------------------------------------------------------------------------------


def test_open_store_directory_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = open_store(str(tmp_path / "r1"))
    assert isinstance(plain, DirectoryStore) and plain.root == tmp_path / "r1"
    assert open_store(f"file://{tmp_path}/r1").root == tmp_path / "r1"
    monkeypatch.chdir(tmp_path)
    relative = open_store("runs/r2")
    assert relative.uri == str(tmp_path / "runs" / "r2")  # absolute, so worker processes agree
    relative.put("state.json", b"{}")
    assert (tmp_path / "runs" / "r2" / "state.json").read_bytes() == b"{}"


def test_open_store_s3_uris() -> None:
    s = open_store("s3://my-bucket/runs/r1/")
    assert isinstance(s, S3Store) and (s.bucket, s.prefix, s.uri) == ("my-bucket", "runs/r1", "s3://my-bucket/runs/r1")
    assert open_store("s3://my-bucket").prefix == ""


@pytest.mark.parametrize(
    "uri", ["", "   ", "gs://bucket/x", "http://host/x", "s3://", "s3:///prefix", "s3://Bad_Bucket/x",
            "s3://ab/x", "s3://bucket/a//b", "s3://bucket/../x", "file://"],
)
def test_open_store_rejects_bad_uris(uri: str) -> None:
    with pytest.raises(NlfsError) as info:
        open_store(uri)
    assert "\n" not in str(info.value)


def test_directory_store_creates_root_on_first_write(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "deep" / "run")
    assert store.list() == [] and not store.exists("x")
    store.delete("x")
    assert not (tmp_path / "deep").exists()  # reads and deletes create nothing
    store.put("results/s/a.json", b"1")
    assert (tmp_path / "deep" / "run" / "results" / "s" / "a.json").is_file()


def test_directory_store_os_errors_are_store_errors(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.put("a", b"file where a directory should be")
    with pytest.raises(StoreError) as info:
        store.put("a/b", b"x")
    assert "'a/b'" in str(info.value) and "\n" not in str(info.value)


# -- S3 specifics ----------------------------------------------------------------------------------


def test_seaweedfs_honours_conditional_put(s3_server) -> None:
    """The run layout's guarantees rest on the server answering 412 to these headers."""
    from botocore.exceptions import ClientError

    client, bucket = s3_server.client(), s3_server.make_bucket()
    etag = client.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
    for kwargs in ({"IfNoneMatch": "*"}, {"IfMatch": '"' + md5(b"other") + '"'}):
        with pytest.raises(ClientError) as info:
            client.put_object(Bucket=bucket, Key="k", Body=b"2", **kwargs)
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    client.put_object(Bucket=bucket, Key="k", Body=b"3", IfMatch=etag)
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"3"


def test_s3_request_count(s3_env) -> None:
    store = open_store(s3_env.uri("p"))
    assert store.request_count == 0
    store.put("a", b"1")
    store.get("a")
    store.list()
    assert store.request_count == 3


def test_s3_missing_bucket_is_a_store_error_not_a_missing_key(s3_env) -> None:
    store = open_store("s3://nlfs-no-such-bucket/run")
    for call in (lambda: store.get("k"), lambda: store.exists("k"), lambda: store.list(),
                 lambda: store.put("k", b"x"), lambda: store.put_if_absent("k", b"x"),
                 lambda: store.compare_and_swap("k", b"x", None),
                 lambda: store.compare_and_swap("k", b"x", md5(b"x")), lambda: store.delete("k")):
        with pytest.raises(StoreError) as info:
            call()
        assert type(info.value) is StoreError, info.value  # not NotFoundError / ConflictError
        assert "nlfs-no-such-bucket" in str(info.value)


def test_s3_wrong_secret_is_reported_without_secrets(s3_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-do-not-print")
    store = open_store(s3_env.uri("p"))
    with pytest.raises(StoreError) as info:
        store.get("k")
    message = str(info.value)
    assert "access denied" in message and s3_env.uri("p") in message and "\n" not in message
    assert "wrong-secret" not in message and s3_env.server.secret_key not in message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_s3_unreachable_endpoint_fails_fast(no_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-do-not-print")
    store = open_store("s3://some-bucket/run")
    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        store.get("state.json")
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert type(info.value) is StoreError
    assert message.startswith(f"cannot reach s3 endpoint {endpoint}") and "s3://some-bucket/run" in message
    assert "\n" not in message and "secret-do-not-print" not in message
    assert elapsed < 10, elapsed


def test_s3_missing_credentials(no_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    store = open_store("s3://some-bucket/run")
    with pytest.raises(StoreError) as info:
        store.put("state.json", b"{}")
    assert str(info.value).startswith("no credentials for s3://some-bucket/run: set AWS_ACCESS_KEY_ID")
