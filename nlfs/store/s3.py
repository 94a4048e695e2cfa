"""The S3 object store (AWS, SeaweedFS, MinIO...) through botocore, the client boto3 wraps.

Create-only is `If-None-Match: *`, compare-and-swap is `If-Match: <etag>`; failures become
StoreError. Transient failures are retried with backoff (`RETRY_ENV`), idempotently: what a lost
response means for each operation is worked out in `S3Store`'s docstring.
"""

from __future__ import annotations

import logging
import math
import mimetypes
import os
import random
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from nlfs.errors import NlfsError
from nlfs.store.base import (
    Blob,
    ConflictError,
    NotFoundError,
    ObjectStore,
    StoreError,
    redact,
    redact_url,
    validate_key,
    validate_prefix,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

__all__ = ["S3Store", "DEFAULT_RETRY_S", "RETRY_ENV"]

T = TypeVar("T")

log = logging.getLogger("nlfs.store")

# Transient failures (no connection, timeouts, 5xx, throttling) are retried with backoff for
# this long, counted from the call's first failure; then the call fails with StoreError.
# NLFS_STORE_RETRY_S sets it for every S3 store of a process (0: no retries); `S3Store(...,
# retry_s=...)` for one store. A short outage (a restarted server, a failover) is ridden out;
# an endpoint that never answers (a typo) is reported after this long, with a warning after 5 s.
RETRY_ENV = "NLFS_STORE_RETRY_S"
DEFAULT_RETRY_S = 180.0
_BACKOFF_FIRST_S = 0.1
_BACKOFF_MAX_S = 5.0
# A blip is retried silently; a failure that lasts says so on stderr (the logger nlfs.store),
# at most once per _WARN_EVERY_S per process, while the call keeps trying.
_WARN_AFTER_S = 5.0
_WARN_EVERY_S = 30.0
# Per attempt. Objects are small, and for a large one the read timeout bounds each wait for
# bytes, not the transfer: a frozen server costs one read timeout per attempt, not minutes.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 20.0
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
_TRANSIENT_CODES = {
    "InternalError", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException",
    "RequestTimeout", "RequestLimitExceeded", "TooManyRequests", "ProvisionedThroughputExceededException",
    # AWS answers 409 while another conditional write to the key is in flight and asks callers
    # to retry, which settles into a clean win or a 412.
    "ConditionalRequestConflict", "OperationAborted",
}

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "InvalidClientTokenId",
}
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}
_CONTENT_TYPES = {".json": "application/json", ".yaml": "application/yaml", ".yml": "application/yaml"}


def _content_type(key: str) -> str:
    ext = os.path.splitext(key)[1].lower()
    return _CONTENT_TYPES.get(ext) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _precondition_failed(exc: ClientError) -> bool:
    return _status(exc) == 412 or _error_code(exc) in ("PreconditionFailed", "ConditionalRequestFailed")


def _transient(exc: Exception) -> bool:
    """Whether `exc` may go away by itself: worth another attempt after a pause."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        return _status(exc) in _TRANSIENT_STATUS or _error_code(exc) in _TRANSIENT_CODES
    if isinstance(exc, bx.SSLError):  # a certificate problem does not heal
        return False
    return _no_answer(exc)


def _no_answer(exc: Exception) -> bool:
    """Whether the request got no HTTP answer: refused, reset, cut off, timed out, TLS."""
    from botocore import exceptions as bx

    return isinstance(exc, (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError))


def retry_seconds(value: float | str | None = None) -> float:
    """The retry window: `value`, else $NLFS_STORE_RETRY_S, else DEFAULT_RETRY_S."""
    if value is None:
        value = os.environ.get(RETRY_ENV, "").strip() or DEFAULT_RETRY_S
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise NlfsError(f"{RETRY_ENV} must be a number of seconds >= 0, got {value!r}")
    return seconds


_last_warning = float("-inf")  # per process: one line per outage, not one per call in flight


_LOADER: Any = None


def _shared_loader() -> Any:
    """One botocore model loader per process: a fresh client then costs ~20 ms instead of ~100 ms."""
    global _LOADER
    if _LOADER is None:
        import botocore.loaders

        _LOADER = botocore.loaders.create_loader()
    return _LOADER


class S3Store(ObjectStore):
    """Objects under `s3://bucket/prefix/`.

    Endpoint, region and credentials come from the environment as boto3/botocore read them
    (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE...); the region
    defaults to us-east-1. The boto3 client is made on first use and again after a fork,
    because clients are not fork-safe. `request_count` counts HTTP requests sent (retries included).

    Every call retries transient failures (no connection, timeouts, 5xx, throttling) with
    jittered exponential backoff for `retry_s` seconds (default $NLFS_STORE_RETRY_S, else
    180), then raises StoreError. Any failed attempt may have been carried out by the server
    with only its response lost, so each operation is retried only as far as that is safe:

    - get, exists, list: reads; a repeat returns what is there now. A listing is repeated
      whole, never resumed from a page token of a failed attempt.
    - put (unconditional), delete: the same request twice leaves the same object (or none);
      these are only used for keys no one races on.
    - put_if_absent: a retry that meets 412 after a failed attempt reads the object: if its
      bytes are ours, our lost attempt created it, and the call returns True. Only a rival
      that wrote byte-identical bytes in that window would be taken for us; for the run
      layout's create-only keys that is the same object (genomes are named by their content)
      or impossible (a result record carries its own timestamp).
    - compare_and_swap(etag): a retry whose condition fails after a failed attempt reads the
      object; if it holds our bytes, our write landed and its etag is returned. If a rival
      wrote over our landed write before the retry, ConflictError is raised although our
      write happened: a caller that answers conflicts by reading again (the controller does)
      then sees the newer state, which already builds on ours. Nothing is ever reported
      written that is not in the store.
    - A 412 on a call's first attempt is a plain conflict: nothing of ours can be there.
    """

    def __init__(self, bucket: str, prefix: str = "", *, retry_s: float | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S):
        if "@" in bucket:  # s3://user:secret@bucket/...: never echo what precedes the @
            raise NlfsError(f"store URI {redact_url(f's3://{bucket}/{prefix}')}: an s3:// URI holds no "
                            "credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise NlfsError(f"invalid S3 bucket name {bucket!r} in s3://{bucket}/{prefix}")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.retry_s = retry_seconds(retry_s)
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.request_count = 0
        self._count_lock = threading.Lock()
        self._client_obj: BaseClient | None = None
        self._client_pid: int | None = None
        self._bucket_checked = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Clients do not pickle; a copy in another process builds its own. The retry window
        # travels as given, so a worker reads the environment the way its parent did.
        return (_rebuild, (self.bucket, self.prefix, self.retry_s, self.connect_timeout_s, self.read_timeout_s))

    # -- client ----------------------------------------------------------------------------

    @property
    def client(self) -> BaseClient:
        if self._client_obj is None or self._client_pid != os.getpid():
            self._client_obj = self._make_client()
            self._client_pid = os.getpid()
        return self._client_obj

    def _make_client(self) -> BaseClient:
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        config = Config(
            s3={"addressing_style": "path"},  # SeaweedFS/MinIO have no virtual-host DNS
            # One attempt per request: the retries are ours (`_retrying`), so that a conditional
            # write knows when an earlier attempt of it may have landed.
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            # Default CRC trailers (boto3 >= 1.36) are not understood by every S3-compatible server.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            # The same client boto3.client("s3") builds, minus boto3's Session, which appends to
            # the loader's search path on every construction (unbounded with a shared loader).
            session = botocore.session.get_session()
            session.register_component("data_loader", _shared_loader())
            region = session.get_config_variable("region") or "us-east-1"
            client = session.create_client("s3", region_name=region, config=config)
        except (BotoCoreError, ValueError) as exc:
            raise StoreError(f"cannot set up S3 access for {self.uri}: {redact(str(exc))}") from None
        client.meta.events.register("before-send.s3", self._count_request)
        return client

    def _count_request(self, **_: Any) -> None:
        with self._count_lock:
            self.request_count += 1
        # Returning anything but None here would replace the HTTP response.

    @property
    def endpoint_url(self) -> str:
        return redact_url(self.client.meta.endpoint_url)

    def _full(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- errors and retries ----------------------------------------------------------------

    def _raise(self, exc: Exception, action: str, key: str | None, waited: float = 0.0) -> NoReturn:
        from botocore import exceptions as bx

        where = f"{self.uri}/{key}" if key else self.uri
        after = f" (retried for {waited:.0f} s; {RETRY_ENV} sets how long)" if waited else ""
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            raise StoreError(
                f"no credentials for {self.uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE)"
            ) from None
        if _no_answer(exc):
            raise StoreError(
                f"cannot reach s3 endpoint {self.endpoint_url} for {self.uri}: {type(exc).__name__}"
                f" ({redact(str(exc))}){after}"
            ) from None
        if isinstance(exc, bx.ClientError):
            code, status = _error_code(exc), _status(exc)
            if code == "NoSuchBucket":
                raise StoreError(
                    f"no bucket {self.bucket!r} at s3 endpoint {self.endpoint_url} ({self.uri})"
                ) from None
            if code in _AUTH_CODES or status == 403:
                # The server's message can echo the access key id; only the code is reported.
                raise StoreError(
                    f"access denied to {where} at {self.endpoint_url} ({code or status}): check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's permissions"
                ) from None
            message = redact(str(exc.response.get("Error", {}).get("Message", "")).strip())
            raise StoreError(f"s3 {action} failed for {where}: {code or status} {message}".strip() + after) from None
        if isinstance(exc, bx.BotoCoreError):
            raise StoreError(f"s3 {action} failed for {where}: {redact(str(exc))}{after}") from None
        raise exc

    def _retrying(self, action: str, key: str | None, fn: Callable[[int], T]) -> T:
        """`fn(attempt)` (attempt 0, 1, ...) until it returns, retrying transient failures.

        `attempt > 0` tells `fn` that an earlier attempt failed and may have been carried out.
        Other failures, and the last transient one once `retry_s` has passed, become StoreError.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        first_failure: float | None = None
        delay = _BACKOFF_FIRST_S
        attempt = 0
        while True:
            try:
                return fn(attempt)
            except (ClientError, BotoCoreError) as exc:
                if not _transient(exc):
                    self._raise(exc, action, key)
                now = time.monotonic()
                if first_failure is None:
                    first_failure = now
                pause = random.uniform(delay / 2, delay)
                if now + pause > first_failure + self.retry_s:
                    self._raise(exc, action, key, waited=now - first_failure)
                if now - first_failure >= _WARN_AFTER_S:
                    self._warn(exc, action, key, first_failure + self.retry_s - now)
                time.sleep(pause)
                delay = min(delay * 2, _BACKOFF_MAX_S)
                attempt += 1

    def _warn(self, exc: Exception, action: str, key: str | None, left: float) -> None:
        global _last_warning
        now = time.monotonic()
        if now - _last_warning < _WARN_EVERY_S:
            return
        _last_warning = now
        where = f"{self.uri}/{key}" if key else self.uri
        log.warning("s3 %s of %s at %s failed (%s: %s); retrying for up to %.0f s more (%s)", action, where,
                    self.endpoint_url, type(exc).__name__, redact(str(exc))[:200], left, RETRY_ENV)

    def _check_bucket(self) -> None:
        """Make sure a "no such key" or a lost condition is not really a missing bucket.

        HEAD answers a bare 404 for both; some servers answer 412 to a conditional PUT into a
        missing bucket; a proxy that is not S3 may 404 everything. Checked once per store.
        Only a 404 counts: credentials scoped to objects may not be allowed HeadBucket at all.
        """
        if self._bucket_checked:
            return
        from botocore.exceptions import ClientError

        def head(_: int) -> bool:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _status(exc) == 404 or _error_code(exc) in ("NoSuchBucket", "404", "NotFound"):
                    return False
                if _transient(exc):
                    raise
            return True

        if not self._retrying("check bucket", None, head):
            raise StoreError(f"no bucket {self.bucket!r} at s3 endpoint {self.endpoint_url} ({self.uri})")
        self._bucket_checked = True

    def _conditional_put(self, key: str, data: bytes, **conditions: str) -> tuple[str | None, int]:
        """PUT with conditions: (new etag, attempt) on success, (None, attempt) when the condition
        failed; `attempt > 0` means an earlier attempt may have landed."""
        from botocore.exceptions import ClientError

        full = self._full(key)

        def attempt(n: int) -> tuple[str | None, int]:
            try:
                resp = self.client.put_object(
                    Bucket=self.bucket, Key=full, Body=data, ContentType=_content_type(key), **conditions
                )
                return str(resp["ETag"]).strip('"'), n
            except ClientError as exc:
                if _precondition_failed(exc) or (
                    "IfMatch" in conditions and _error_code(exc) in _NOT_FOUND_CODES
                ):
                    return None, n
                raise

        return self._retrying("put", key, attempt)

    def _landed(self, key: str, data: bytes) -> Blob | None:
        """After a failed attempt, whether the object now holds exactly our bytes."""
        blob = self.get_or_none(key)
        return blob if blob is not None and blob.data == data else None

    # -- the contract ----------------------------------------------------------------------

    def get(self, key: str) -> Blob:
        from botocore.exceptions import ClientError

        full = self._full(key)

        def attempt(_: int) -> Blob | None:
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=full)
            except ClientError as exc:
                if _error_code(exc) in _NOT_FOUND_CODES or _status(exc) == 404:
                    if _error_code(exc) != "NoSuchKey":
                        self._check_bucket()
                    return None
                raise
            data = resp["Body"].read()  # inside the attempt: a body cut off mid-way is retried
            return Blob(data, str(resp["ETag"]).strip('"'))

        blob = self._retrying("get", key, attempt)
        if blob is None:
            raise NotFoundError(f"no object {key!r} in {self.uri}")
        return blob

    def put(self, key: str, data: bytes) -> str:
        full = self._full(key)
        data = bytes(data)
        resp = self._retrying(
            "put",
            key,
            lambda _: self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, ContentType=_content_type(key)
            ),
        )
        return str(resp["ETag"]).strip('"')

    def put_if_absent(self, key: str, data: bytes) -> bool:
        data = bytes(data)
        etag, attempt = self._conditional_put(key, data, IfNoneMatch="*")
        if etag is not None:
            return True
        # The key exists. After a failed attempt, it may be our own object whose response was lost.
        if attempt > 0 and self._landed(key, data) is not None:
            return True
        self._check_bucket()
        return False

    def compare_and_swap(self, key: str, data: bytes, etag: str | None) -> str:
        data = bytes(data)
        conditions = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": f'"{etag.strip(chr(34))}"'}
        new_etag, attempt = self._conditional_put(key, data, **conditions)
        if new_etag is not None:
            return new_etag
        if attempt > 0:
            landed = self._landed(key, data)
            if landed is not None:
                return landed.etag
        self._check_bucket()
        expected = "absent" if etag is None else f"etag {etag}"
        raise ConflictError(f"{key!r} in {self.uri} changed: expected {expected}")

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""

        def collect(_: int) -> list[str]:
            keys = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
                for item in page.get("Contents", ()):
                    key = item["Key"][len(base):]
                    if key and not key.endswith("/"):  # some servers list directory markers
                        keys.append(key)
            return keys

        return sorted(self._retrying("list", prefix or None, collect))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        full = self._full(key)

        def attempt(_: int) -> bool:
            try:
                self.client.head_object(Bucket=self.bucket, Key=full)
                return True
            except ClientError as exc:
                if _error_code(exc) in _NOT_FOUND_CODES or _status(exc) == 404:
                    self._check_bucket()
                    return False
                raise

        return self._retrying("check", key, attempt)

    def delete(self, key: str) -> None:
        full = self._full(key)
        self._retrying("delete", key, lambda _: self.client.delete_object(Bucket=self.bucket, Key=full))


def _rebuild(bucket: str, prefix: str, retry_s: float, connect_timeout_s: float, read_timeout_s: float) -> S3Store:
    return S3Store(bucket, prefix, retry_s=retry_s, connect_timeout_s=connect_timeout_s,
                   read_timeout_s=read_timeout_s)
