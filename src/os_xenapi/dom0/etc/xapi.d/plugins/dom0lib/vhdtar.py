"""Images as Glance keeps them for XenServer: a gzip'd tar of a VHD chain (./0.vhd, ./1.vhd ...).

os-xenapi 0.3.4 piped these through `tar -zx` and `tar -zc`. Here the tarfile module reads
and writes them as streams (bounded memory), which lets extract() judge every entry before
anything is written: only regular files with a chain's names (N.vhd, or the old snap, image,
base and swap.vhd) directly in the archive's top directory; no links, devices, paths or
duplicates. A hostile image can therefore not write outside the staging area.
"""

import gzip
import os
import re
import tarfile
import time
import zlib

from dom0lib.errors import BAD_DATA, PluginError

CHUNK = 1024 * 1024
MAX_ENTRIES = 32
DEFAULT_COMPRESSION = 6
_ENTRY = re.compile(r"(?:\./)?((?:0|[1-9][0-9]{0,2}|snap|image|base|swap)\.vhd)")
# Errors that mean the bytes are not a well-formed gzip'd tar (gzip raises OSError for a
# bad header in Python 3.6, BadGzipFile, an OSError too, from 3.8).
_FORMAT_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


def _bad(reason):
    return PluginError(BAD_DATA, "image", reason)


def _next_entry(archive):
    try:
        return archive.next()
    except PluginError:
        raise
    except _FORMAT_ERRORS as exc:
        raise _bad(f"is not a gzip'd tar archive ({str(exc)[:120]})") from None


def _read(source, size):
    try:
        return source.read(size)
    except PluginError:
        raise
    except _FORMAT_ERRORS as exc:
        raise _bad(f"is truncated or corrupt ({str(exc)[:120]})") from None


def _checked_name(entry, seen):
    match = _ENTRY.fullmatch(entry.name)
    if match is None:
        raise _bad("holds an entry that is not part of a VHD chain: " + entry.name[:80])
    name = match.group(1)
    if not entry.isreg():
        raise _bad(f"entry {name} is not a regular file")
    if name in seen:
        raise _bad(f"holds {name} twice")
    if len(seen) >= MAX_ENTRIES:
        raise _bad(f"holds more than {MAX_ENTRIES} files")
    return name


def extract(stream, directory: str) -> list:
    """Read a gzip'd tar from stream (an object with read()) into directory; return the
    file names written. Raises PluginError BAD_DATA for anything but a VHD chain; errors
    the stream raises (a PluginError such as RETRYABLE) pass through unchanged."""
    try:
        archive = tarfile.open(fileobj=stream, mode="r|gz")
    except PluginError:
        raise
    except _FORMAT_ERRORS as exc:
        raise _bad(f"is not a gzip'd tar archive ({str(exc)[:120]})") from None
    written = []
    with archive:
        entry = _next_entry(archive)
        while entry is not None:
            if not (entry.isdir() and entry.name in (".", "./")):
                name = _checked_name(entry, written)
                _write_entry(archive, entry, os.path.join(directory, name))
                written.append(name)
            entry = _next_entry(archive)
    return written


def _write_entry(archive, entry, path):
    source = archive.extractfile(entry)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644)
    with os.fdopen(fd, "wb") as target:
        remaining = entry.size
        while remaining > 0:
            data = _read(source, min(CHUNK, remaining))
            if not data:
                raise _bad("is truncated")
            target.write(data)
            remaining -= len(data)


def write(directory: str, names: list, sink, compression: int = DEFAULT_COMPRESSION) -> None:
    """Write the files names of directory to sink (an object with write()) as a gzip'd tar
    of ./<name> entries, the way 0.3.4's `tar -zc --directory=<dir> .` laid them out."""
    with gzip.GzipFile(filename="", mode="wb", fileobj=sink, compresslevel=compression,
                       mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w|", format=tarfile.GNU_FORMAT) as archive:
            top = tarfile.TarInfo(".")
            top.type = tarfile.DIRTYPE
            top.mode = 0o755
            top.mtime = int(time.time())
            archive.addfile(top)
            for name in names:
                path = os.path.join(directory, name)
                info = archive.gettarinfo(path, arcname="./" + name)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                with open(path, "rb") as source:
                    archive.addfile(info, source)
