"""The S3 object store (AWS, SeaweedFS, MinIO...) through botocore, the client boto3 wraps.

Create-only is `If-None-Match: *`, compare-and-swap is `If-Match: <etag>`; failures become StoreError.
"""

from __future__ import annotations

import mimetypes
import os
import random
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

from nlfs.errors import NlfsError
from nlfs.store.base import (
    Blob,
    ConflictError,
    NotFoundError,
    ObjectStore,
    StoreError,
    validate_key,
    validate_prefix,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

__all__ = ["S3Store", "DEFAULT_MAX_ATTEMPTS"]

T = TypeVar("T")

# Few attempts and short connect timeouts: an unreachable endpoint must fail in seconds, while
# transient 5xx/throttling still gets retried with standard-mode backoff. AWS_MAX_ATTEMPTS wins.
DEFAULT_MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 60.0
# AWS answers 409 ConditionalRequestConflict while another conditional write to the key is in
# flight; it asks callers to retry, which settles into a clean win or a 412.
_CONFLICT_RETRIES = 8

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


def _strip_userinfo(url: str) -> str:
    # An endpoint written as http://user:secret@host must not leak into an error message.
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return urlunsplit(parts)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _retried(exc: ClientError) -> bool:
    return int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0) > 0


def _precondition_failed(exc: ClientError) -> bool:
    return _status(exc) == 412 or _error_code(exc) in ("PreconditionFailed", "ConditionalRequestFailed")


def _in_flight_conflict(exc: ClientError) -> bool:
    return _status(exc) == 409 and _error_code(exc) in ("ConditionalRequestConflict", "OperationAborted")


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
    """

    def __init__(self, bucket: str, prefix: str = ""):
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise NlfsError(f"invalid S3 bucket name {bucket!r} in s3://{bucket}/{prefix}")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.request_count = 0
        self._count_lock = threading.Lock()
        self._client_obj: BaseClient | None = None
        self._client_pid: int | None = None
        self._bucket_checked = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Clients do not pickle; a copy in another process builds its own.
        return (S3Store, (self.bucket, self.prefix))

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

        attempts_env = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
        try:
            max_attempts = int(attempts_env) if attempts_env else DEFAULT_MAX_ATTEMPTS
        except ValueError:
            raise NlfsError(f"AWS_MAX_ATTEMPTS must be an integer, got {attempts_env!r}") from None
        config = Config(
            s3={"addressing_style": "path"},  # SeaweedFS/MinIO have no virtual-host DNS
            retries={"mode": "standard", "total_max_attempts": max(1, max_attempts)},
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
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
            raise StoreError(f"cannot set up S3 access for {self.uri}: {exc}") from None
        client.meta.events.register("before-send.s3", self._count_request)
        return client

    def _count_request(self, **_: Any) -> None:
        with self._count_lock:
            self.request_count += 1
        # Returning anything but None here would replace the HTTP response.

    @property
    def endpoint_url(self) -> str:
        return _strip_userinfo(self.client.meta.endpoint_url)

    def _full(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- errors ----------------------------------------------------------------------------

    def _raise(self, exc: Exception, action: str, key: str | None) -> NoReturn:
        from botocore import exceptions as bx

        where = f"{self.uri}/{key}" if key else self.uri
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            raise StoreError(
                f"no credentials for {self.uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE)"
            ) from None
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError,
                            bx.ReadTimeoutError, bx.ProxyConnectionError, bx.SSLError, bx.HTTPClientError)):
            raise StoreError(
                f"cannot reach s3 endpoint {self.endpoint_url} for {self.uri}: {type(exc).__name__}"
                f" ({_strip_userinfo(str(exc))})"
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
            message = str(exc.response.get("Error", {}).get("Message", "")).strip()
            raise StoreError(f"s3 {action} failed for {where}: {code or status} {message}".strip()) from None
        if isinstance(exc, bx.BotoCoreError):
            raise StoreError(f"s3 {action} failed for {where}: {_strip_userinfo(str(exc))}") from None
        raise exc

    def _call(self, action: str, key: str | None, fn: Callable[[], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as exc:
            self._raise(exc, action, key)
        except BotoCoreError as exc:
            self._raise(exc, action, key)

    def _check_bucket(self) -> None:
        """Make sure a "no such key" or a lost condition is not really a missing bucket.

        HEAD answers a bare 404 for both; some servers answer 412 to a conditional PUT into a
        missing bucket; a proxy that is not S3 may 404 everything. Checked once per store.
        Only a 404 counts: credentials scoped to objects may not be allowed HeadBucket at all.
        """
        if self._bucket_checked:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _status(exc) == 404 or _error_code(exc) in ("NoSuchBucket", "404", "NotFound"):
                raise StoreError(
                    f"no bucket {self.bucket!r} at s3 endpoint {self.endpoint_url} ({self.uri})"
                ) from None
        except BotoCoreError as exc:
            self._raise(exc, "check bucket", None)
        self._bucket_checked = True

    def _conditional_put(self, key: str, data: bytes, **conditions: str) -> str:
        """PUT with conditions; returns the new etag, lets the 412 ClientError through."""
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._full(key)
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                resp = self.client.put_object(
                    Bucket=self.bucket, Key=full, Body=data, ContentType=_content_type(key), **conditions
                )
                return str(resp["ETag"]).strip('"')
            except ClientError as exc:
                if _in_flight_conflict(exc) and attempt < _CONFLICT_RETRIES:
                    time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
                    continue
                if _precondition_failed(exc) or (
                    "IfMatch" in conditions and _error_code(exc) in _NOT_FOUND_CODES
                ):
                    raise
                self._raise(exc, "put", key)
            except BotoCoreError as exc:
                self._raise(exc, "put", key)
        raise AssertionError("unreachable")

    def _landed(self, key: str, data: bytes) -> Blob | None:
        """After a retried conditional PUT failed, whether our own first attempt is what landed."""
        try:
            blob = self.get(key)
        except NotFoundError:
            return None
        return blob if blob.data == data else None

    # -- the contract ----------------------------------------------------------------------

    def get(self, key: str) -> Blob:
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._full(key)
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=full)
            data = resp["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES or _status(exc) == 404:
                if _error_code(exc) != "NoSuchKey":
                    self._check_bucket()
                raise NotFoundError(f"no object {key!r} in {self.uri}") from None
            self._raise(exc, "get", key)
        except BotoCoreError as exc:
            self._raise(exc, "get", key)
        return Blob(data, str(resp["ETag"]).strip('"'))

    def put(self, key: str, data: bytes) -> str:
        full = self._full(key)
        resp = self._call(
            "put",
            key,
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=full, Body=bytes(data), ContentType=_content_type(key)
            ),
        )
        return str(resp["ETag"]).strip('"')

    def put_if_absent(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        data = bytes(data)
        try:
            self._conditional_put(key, data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            # A retry after a lost response meets our own object: that is still our win. (A rival
            # that wrote byte-identical data in that window would be indistinguishable.)
            if _retried(exc) and self._landed(key, data):
                return True
            self._check_bucket()
            return False

    def compare_and_swap(self, key: str, data: bytes, etag: str | None) -> str:
        from botocore.exceptions import ClientError

        data = bytes(data)
        conditions = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": f'"{etag.strip(chr(34))}"'}
        try:
            return self._conditional_put(key, data, **conditions)
        except ClientError as exc:
            if _retried(exc):
                landed = self._landed(key, data)
                if landed is not None:
                    return landed.etag
            self._check_bucket()
            expected = "absent" if etag is None else f"etag {etag}"
            raise ConflictError(f"{key!r} in {self.uri} changed: expected {expected}") from None

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""

        def collect() -> list[str]:
            keys = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
                for item in page.get("Contents", ()):
                    key = item["Key"][len(base):]
                    if key and not key.endswith("/"):  # some servers list directory markers
                        keys.append(key)
            return keys

        return sorted(self._call("list", prefix or None, collect))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._full(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=full)
            return True
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES or _status(exc) == 404:
                self._check_bucket()
                return False
            self._raise(exc, "check", key)
        except BotoCoreError as exc:
            self._raise(exc, "check", key)

    def delete(self, key: str) -> None:
        full = self._full(key)
        self._call("delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=full))
