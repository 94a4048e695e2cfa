"""Object storage for runs: a local directory or an S3 bucket, behind one `ObjectStore` interface.

`open_store(uri)` picks the backend; `nlfs.store.layout` names the keys of a run.
"""

from __future__ import annotations

from nlfs.errors import NlfsError
from nlfs.store import layout
from nlfs.store.base import (
    Blob,
    ConflictError,
    NotFoundError,
    ObjectStore,
    StoreError,
    md5_etag,
    redact,
    redact_url,
    validate_key,
    validate_prefix,
)
from nlfs.store.local import DirectoryStore, SymlinkError
from nlfs.store.s3 import S3Store  # imports boto3 only when a client is first needed

__all__ = [
    "Blob",
    "ConflictError",
    "DirectoryStore",
    "NotFoundError",
    "ObjectStore",
    "S3Store",
    "StoreError",
    "SymlinkError",
    "layout",
    "md5_etag",
    "open_store",
    "redact",
    "redact_url",
    "validate_key",
    "validate_prefix",
]

_USAGE = "use a directory path, file://PATH or s3://BUCKET/PREFIX"


def open_store(uri: str) -> ObjectStore:
    """The store a URI names: a path or `file://path` (directory), `s3://bucket/prefix` (S3).

    Opening is cheap and does no I/O: an unreachable or missing store is reported by the
    first operation, as StoreError. Error messages show the URI without credentials.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise NlfsError(f"empty store URI: {_USAGE}")
    uri = uri.strip()
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return DirectoryStore(uri)
    scheme = scheme.lower()
    if scheme == "file":
        if not rest:
            raise NlfsError(f"store URI {redact_url(uri)!r} has no path: {_USAGE}")
        if rest.startswith("localhost/"):
            rest = rest[len("localhost"):]
        return DirectoryStore(rest)
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise NlfsError(f"store URI {redact_url(uri)!r} has no bucket: {_USAGE}")
        return S3Store(bucket, prefix)
    raise NlfsError(f"unsupported store URI {redact_url(uri)!r}: {_USAGE}")
