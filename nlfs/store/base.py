"""The object-store contract every part of nlfs writes runs through.

Defines `ObjectStore`, its value type `Blob`, the store errors, and the key rules shared by all backends.
"""

from __future__ import annotations

import abc
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nlfs.errors import NlfsError

__all__ = [
    "Blob",
    "ConflictError",
    "NotFoundError",
    "ObjectStore",
    "StoreError",
    "md5_etag",
    "redact",
    "redact_url",
    "validate_key",
    "validate_prefix",
]

# S3's own limit; keeping it for the directory store too means a run can move between backends.
MAX_KEY_BYTES = 1024

_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


class StoreError(NlfsError):
    """The store cannot be used: unreachable, no credentials, no such bucket, I/O failure."""


class NotFoundError(StoreError):
    """The key does not exist (the store itself is fine)."""


class ConflictError(StoreError):
    """A conditional write lost: the key changed, or exists, since the caller last looked."""


@dataclass(frozen=True)
class Blob:
    """An object's content and the etag to pass to `compare_and_swap`."""

    data: bytes
    etag: str


# Query parameters that carry credentials: presigned S3 URLs (X-Amz-Signature, X-Amz-Credential,
# X-Amz-Security-Token, the v2 Signature and AWSAccessKeyId) and the usual token names.
_SECRET_PARAM = re.compile(r"sig|signature|credential|token|secret|password|passwd|pwd|key|auth", re.I)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]+")


def redact_url(url: str) -> str:
    """`url` without credentials: user:password@ dropped, secret query values replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced '[' in the host: show nothing of it but the scheme
        return url.split("://", 1)[0] + "://***"
    netloc = parts.netloc.rsplit("@", 1)[1] if "@" in parts.netloc else parts.netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.search(name) for name, _ in pairs):
            query = urlencode([(name, "***" if _SECRET_PARAM.search(name) else value) for name, value in pairs],
                              safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact(text: str) -> str:
    """`text` with every URL in it passed through `redact_url` (for error messages and logs)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def md5_etag(data: bytes) -> str:
    """The etag S3 gives a single-part upload; the directory store uses the same, so etags compare."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _check_segments(text: str, what: str) -> None:
    if text.startswith("/"):
        raise NlfsError(f"invalid store {what} {text!r}: must be relative (no leading '/')")
    if _BAD_CHARS.search(text):
        raise NlfsError(f"invalid store {what} {text!r}: control characters and '\\' are not allowed")
    if len(text.encode("utf-8")) > MAX_KEY_BYTES:
        raise NlfsError(f"invalid store {what} {text[:40]!r}...: longer than {MAX_KEY_BYTES} bytes")
    for segment in text.split("/"):
        if segment == "":
            raise NlfsError(f"invalid store {what} {text!r}: empty path segment")
        if segment in (".", ".."):
            raise NlfsError(f"invalid store {what} {text!r}: '.' and '..' segments are not allowed")
        if segment.startswith("."):
            # Dot-names are reserved for the directory store's temp and lock files, which
            # must never collide with, or be listed as, real keys.
            raise NlfsError(f"invalid store {what} {text!r}: segments may not start with '.'")


def validate_key(key: str) -> str:
    """Return `key` if it is a valid relative '/'-separated key; raise NlfsError otherwise."""
    if not isinstance(key, str) or key == "":
        raise NlfsError(f"invalid store key {key!r}: must be a non-empty string")
    _check_segments(key, "key")
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` if valid for `list`: empty, or a key-like string that may end in '/'."""
    if not isinstance(prefix, str):
        raise NlfsError(f"invalid store prefix {prefix!r}: must be a string")
    body = prefix[:-1] if prefix.endswith("/") else prefix
    if prefix and body == "":
        raise NlfsError("invalid store prefix '/': use '' for the whole store")
    if body:
        _check_segments(body, "prefix")
    return prefix


class ObjectStore(abc.ABC):
    """A flat namespace of byte objects with create-only and compare-and-swap writes.

    Keys are relative '/'-separated strings (see `validate_key`). Implementations are safe to
    use from several processes at once; that is the point of the conditional writes.
    """

    uri: str

    @abc.abstractmethod
    def get(self, key: str) -> Blob:
        """The object at `key`; NotFoundError if there is none."""

    def get_or_none(self, key: str) -> Blob | None:
        """The object at `key`, or None if there is none."""
        try:
            return self.get(key)
        except NotFoundError:
            return None

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Write unconditionally; return the new etag."""

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create-only write; True if this call created the object, False if it already existed."""

    @abc.abstractmethod
    def compare_and_swap(self, key: str, data: bytes, etag: str | None) -> str:
        """Write only if the current etag is `etag` (None: only if absent); return the new etag.

        Raises ConflictError, leaving the object untouched, when the condition does not hold.
        """

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix` (a plain string prefix, as in S3), sorted."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object exists at `key`."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error (as in S3)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"
