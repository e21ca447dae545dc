"""Quiet Blender: send the C-level output on file descriptors 1 and 2 to a log while it works.

Blender prints from C, past ``sys.stdout``; only redirecting the descriptors silences it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from pathlib import Path

__all__ = ["redirect_fds"]


_libc = None


def _flush_c_stdio() -> None:
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None)
        _libc.fflush(None)
    except (OSError, AttributeError):  # e.g. Windows: nothing to flush this way
        pass


@contextlib.contextmanager
def redirect_fds(log_path: Path | None):
    """Send fds 1 and 2 to ``log_path`` (C-level output too) while inside; no-op for None."""
    if log_path is None:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError):
            pass
    _flush_c_stdio()
    saved = [os.dup(1), os.dup(2)]
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        _flush_c_stdio()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in saved + [fd]:
            os.close(f)
