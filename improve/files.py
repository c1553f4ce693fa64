"""File writes that a kill cannot leave half done: temp file + rename. Every layer writes through these.
And what a full disk is: an OSError of errno ENOSPC or EDQUOT, which stops a run (DiskFull) instead of failing
the round that happened to be writing."""
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left on the device; the user's disk quota exceeded


class DiskFull(OSError):
    """The disk (or the user's quota) is full: the run stops, what is finished is kept, resume goes on."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def atomic_text(dst: Path, text: str) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, dst)


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename): readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
