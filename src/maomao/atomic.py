"""Write a file whole or not at all: to a unique temporary name beside it, then rename.

A reader (another command, the node) sees the old content or the new, never half of it,
and two writers never share a temporary file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def atomic_write(path: Path, data: str | bytes, *, mode: int | None = None) -> Path:
    """Replace *path* with *data* (text is written as UTF-8); *mode* sets its permissions
    before it becomes visible, so a 0600 file is never readable by others, not even briefly."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    fd = os.open(tmp, flags, 0o600 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
