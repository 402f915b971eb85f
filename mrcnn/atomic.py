"""One way to write a file so that a crash or a full disk never leaves half of it behind.

``atomic_write(path, write_fn)`` lets ``write_fn`` fill an in-memory buffer first, so the
number of bytes the file needs is known before the disk is touched; the bytes then go to
``<path>.tmp``, are fsynced, and the temp file is renamed over ``path`` (the directory is
fsynced too, so the rename survives a power cut). On any failure the temp file is removed
and ``path`` keeps its old contents (or stays absent). A full disk (ENOSPC, EDQUOT) or a file
size limit (EFBIG, RLIMIT_FSIZE) raises :class:`DiskFullError`, whose message names the file,
the bytes it needed and the bytes free there.

Used by run.json / index.json (``runs.write_json_atomic``), traces (``Trace.save``), weights
(``weights.save_weights``) and optimizer states (``optimizer_state.save_optimizer_state``).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
from pathlib import Path

# errno values that mean "no room for these bytes" rather than a broken disk or a bad path.
NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
TEMP_SUFFIX = ".tmp"


class DiskFullError(OSError):
    """A file could not be written for lack of space (or over a file size limit).

    ``path``, ``needed`` (bytes) and ``free`` (bytes, None if unknown) say which and how much.
    """

    def __init__(self, path, needed: int, free, cause: str):
        self.path, self.needed, self.free = Path(path), int(needed), free
        free_text = f"{format_bytes(free)} free there" if free is not None else "free space unknown"
        super().__init__(errno.ENOSPC,
                         f"could not write {self.path}: it needs {format_bytes(needed)}, "
                         f"{free_text} ({cause})")

    def __str__(self) -> str:
        return self.strerror


def format_bytes(count) -> str:
    """``1536`` -> ``'1.5 KiB'``; whole bytes below 1 KiB."""
    count = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{int(count)} bytes" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def temp_path(path) -> Path:
    """``epoch_0001.h5`` -> ``epoch_0001.h5.tmp`` (the name every writer here uses)."""
    path = Path(path)
    return path.with_name(path.name + TEMP_SUFFIX)


def free_bytes(folder):
    """Bytes free to this user in ``folder``'s file system, None if it cannot be asked."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def atomic_write(path, write_fn) -> Path:
    """Write ``path`` from ``write_fn(binary file object)`` atomically; returns ``path``.

    ``write_fn`` writes into an in-memory buffer (h5py, numpy and json all accept one).
    Raises DiskFullError on a full disk / file size limit, other OSErrors unchanged; in every
    failure the temp file is gone and ``path`` is untouched.
    """
    path = Path(path)
    buffer = io.BytesIO()
    write_fn(buffer)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def write_bytes_atomic(path, data: bytes) -> Path:
    """``data`` to ``path`` through ``<path>.tmp`` + fsync + rename (see module docstring)."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        _remove_quietly(tmp)
        if isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS:
            raise DiskFullError(path, len(data), free_bytes(path.parent),
                                os.strerror(error.errno)) from None
        raise
    _fsync_dir(path.parent)
    return path


def _remove_quietly(path) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _fsync_dir(folder) -> None:
    """Make a rename in ``folder`` durable; some file systems cannot open a directory."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_files(*paths) -> None:
    """Remove each existing path (a checkpoint pair whose second half failed); errors ignored."""
    for path in paths:
        _remove_quietly(path)
