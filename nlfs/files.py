"""Reading what users hand us as files, safely: regular files only (a FIFO would block), bounded
in size, UTF-8 text, plain JSON; and printing names they chose without letting them drive the
terminal. Standard library only, so that `nlfs check` on a genome file stays fast to start.

`nlfs.formats` re-exports these; the YAML and pydantic side of the formats lives there.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from nlfs.errors import NlfsError

# Configs, profiles and protocols are a few KB; this only stops a mistaken path (a dataset, a
# disk image) from being read whole before the parser says it is not YAML.
MAX_TEXT_BYTES = 1 << 20


def read_file_bytes(path: str | os.PathLike[str], source: str | None = None,
                    max_bytes: int = MAX_TEXT_BYTES, what: str = "file of this kind") -> bytes:
    """The bytes of a regular file of at most `max_bytes`; anything else is NlfsError at once.

    Opened non-blocking and checked before reading: a FIFO, a directory or a device given as a
    file is refused instead of blocking or reading forever.
    """
    where = str(path) if source is None else source
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise NlfsError(f"{where}: cannot read ({err.strerror or err})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NlfsError(f"{where}: not a regular file ({_file_kind(info.st_mode)})")
        if info.st_size > max_bytes:
            raise NlfsError(f"{where}: {info.st_size} bytes is larger than a {what} can be ({max_bytes} bytes at most)")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= max_bytes:  # /proc-like files report size 0: read to the limit anyway
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as err:
        raise NlfsError(f"{where}: cannot read ({err.strerror or err})") from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise NlfsError(f"{where}: more than {max_bytes} bytes is larger than a {what} can be")
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a plain file"


def decode_text(data: bytes | str, source: str) -> str:
    """UTF-8 text (a leading byte-order mark dropped); NlfsError naming the first bad byte."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise NlfsError(f"{source}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})") from None


def read_text_file(path: str | os.PathLike[str], source: str | None = None,
                   max_bytes: int = MAX_TEXT_BYTES, what: str = "file of this kind") -> str:
    """The one reader of text files (configs, profiles, protocols): a regular file, UTF-8."""
    where = str(path) if source is None else source
    return decode_text(read_file_bytes(path, where, max_bytes, what), where)


def printable(text: str) -> str:
    """`text` safe to print on one terminal line: control characters, line and paragraph
    separators and format characters (bidi overrides) written as escapes such as `\x1b`."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads_json(data: bytes | str, source: str) -> Any:
    """Plain JSON (RFC 8259): NaN, Infinity and -Infinity are refused; NlfsError if not JSON."""
    try:
        return json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise NlfsError(f"{source}: not JSON: nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, over-long integers
        raise NlfsError(f"{source}: not JSON: {str(err).splitlines()[0][:200]}") from None
