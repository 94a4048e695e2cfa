"""The directory-backed object store: one file per key under a root directory.

Safe across processes on one machine (and POSIX shared filesystems with working flock/link).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from nlfs.store.base import (
    Blob,
    ConflictError,
    NotFoundError,
    ObjectStore,
    StoreError,
    md5_etag,
    validate_key,
    validate_prefix,
)

__all__ = ["DirectoryStore", "SymlinkError"]


class SymlinkError(StoreError):
    """A symbolic link inside a directory store: refused, never followed.

    Keys name files under the store's root; a link planted inside a run (`genomes -> /etc`)
    would make reads and writes reach outside it. The root's own path may contain links.
    """

F = TypeVar("F", bound=Callable[..., Any])

# errno values meaning "this filesystem cannot hard-link", where create-only falls back to
# check-then-rename under the key lock.
_NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV}


def _os_errors(op: str) -> Callable[[F], F]:
    """Turn stray OSErrors (permissions, a file where a directory should be) into StoreError."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(self: DirectoryStore, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except StoreError:
                raise
            except OSError as exc:
                key = args[0] if args else next(iter(kwargs.values()), "")
                raise StoreError(
                    f"cannot {op} {key!r} in {self.uri}: {exc.strerror or exc}"
                ) from exc

        return inner  # type: ignore[return-value]

    return wrap


class DirectoryStore(ObjectStore):
    """Keys map to files under `root`; internal files start with '.' and are never listed.

    Every write goes to a temp file in the target directory, is fsynced, then renamed or
    hard-linked into place, so readers only ever see whole objects. Writers of one key
    serialise on `flock` of a per-key lock file `.<name>.lock`, which makes compare-and-swap
    and create-only exact across processes; reads take no lock.

    Below the root, every path is checked: a symbolic link is `SymlinkError`, and an object
    that is not a regular file (a FIFO, a socket, a device) is `StoreError` at once, never a
    read that blocks.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)

    def __reduce__(self) -> tuple[Any, ...]:
        return (DirectoryStore, (self.root,))

    # -- helpers -------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        parts = validate_key(key).split("/")
        self._refuse_links(parts, key)
        return self.root.joinpath(*parts)

    def _refuse_links(self, parts: list[str], key: str) -> None:
        """SymlinkError if any existing path component of `parts` below the root is a link."""
        path = self.root
        for part in parts:
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return  # nothing further down exists, so nothing further down is a link
            if stat.S_ISLNK(mode):
                rel = path.relative_to(self.root).as_posix()
                raise SymlinkError(f"{key!r} in {self.uri}: {rel} is a symbolic link; a directory store "
                                   "does not follow links")

    def _read(self, path: Path, key: str) -> bytes | None:
        """The bytes of the object at `path`, or None if there is none (or a directory is there)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a link made since _path looked
                raise SymlinkError(f"{key!r} in {self.uri} is a symbolic link; a directory store "
                                   "does not follow links") from None
            raise
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                return None
            if not stat.S_ISREG(mode):
                raise StoreError(f"{key!r} in {self.uri} is not a regular file; refusing to read it")
            os.set_blocking(fd, True)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _locked(self, path: Path, create_dirs: bool = True) -> Iterator[bool]:
        """Hold the key's exclusive lock; yields False (no lock) if the directory is absent."""
        if create_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.parent.is_dir():
            yield False
            return
        # O_NOFOLLOW: a link planted at the lock's name must not make us create a file elsewhere.
        fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        finally:
            os.close(fd)  # closing releases the flock

    @staticmethod
    def _write_temp(path: Path, data: bytes) -> Path:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)
        return tmp

    @staticmethod
    def _sync_dir(directory: Path) -> None:
        # The rename is only durable once the directory entry is; some filesystems refuse this.
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)

    def _current_etag(self, path: Path, key: str) -> str | None:
        data = self._read(path, key)
        return None if data is None else md5_etag(data)

    def _replace(self, path: Path, data: bytes) -> str:
        tmp = self._write_temp(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._sync_dir(path.parent)
        return md5_etag(data)

    # -- the contract ----------------------------------------------------------------------

    @_os_errors("read")
    def get(self, key: str) -> Blob:
        data = self._read(self._path(key), key)
        if data is None:
            raise NotFoundError(f"no object {key!r} in {self.uri}")
        return Blob(data, md5_etag(data))

    @_os_errors("write")
    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        # Locked even though unconditional, so a put cannot slip between a CAS's check and its write.
        with self._locked(path):
            return self._replace(path, bytes(data))

    @_os_errors("create")
    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        with self._locked(path):
            if path.exists():  # cheap answer for retried writers, without writing a temp file
                return False
            tmp = self._write_temp(path, bytes(data))
            try:
                # link() fails if the target exists: exactly one winner even against a writer
                # that bypasses the lock, and the object appears complete.
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                if path.exists():
                    return False
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            self._sync_dir(path.parent)
            return True

    @_os_errors("compare-and-swap")
    def compare_and_swap(self, key: str, data: bytes, etag: str | None) -> str:
        path = self._path(key)
        with self._locked(path):
            current = self._current_etag(path, key)
            if current != etag:
                expected = "absent" if etag is None else f"etag {etag}"
                found = "absent" if current is None else f"etag {current}"
                raise ConflictError(f"{key!r} in {self.uri} changed: expected {expected}, found {found}")
            return self._replace(path, bytes(data))

    @_os_errors("list")
    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        # Walk only the deepest directory the prefix fully names; the rest is string matching.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if base:
            self._refuse_links(base.split("/"), prefix)
        start = self.root.joinpath(*base.split("/")) if base else self.root
        if not start.is_dir():
            return []
        keys: list[str] = []
        # os.walk does not descend into linked directories; a linked file is listed, and
        # reading it is SymlinkError.
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, self.root)
            head = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in filenames:
                if not name.startswith("."):
                    key = head + name
                    if key.startswith(prefix):
                        keys.append(key)
        keys.sort()
        return keys

    @_os_errors("check")
    def exists(self, key: str) -> bool:
        try:
            return stat.S_ISREG(os.lstat(self._path(key)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    @_os_errors("delete")
    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._locked(path, create_dirs=False) as have_dir:
            if have_dir:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                # The lock file stays: unlinking it while another process waits on it would
                # let two writers hold "the" lock on different inodes.
