"""`journal.jsonl`: the append-only record of a run, one JSON event per line.

Each event is flushed and fsync'd before `write` returns, so a kill -9 loses at most the event being written;
a torn last line is ignored on reading. Production code writes typed records (`events.py`) through `write`;
`append` writes a raw line (tests use it to build journals of any vintage).
"""
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

from improve.journal.events import Event


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, event: Event) -> Dict[str, Any]:
        """Append one typed event; returns the line's fields as written."""
        return self.append(event.kind, **event.fields())

    def append(self, event: str, **fields: Any) -> Dict[str, Any]:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        line = json.dumps(record, default=str) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return record

    def events(self) -> List[Dict[str, Any]]:
        return list(self._read())

    def _read(self) -> Iterator[Dict[str, Any]]:
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # torn write from a kill: the event never happened
                yield json.loads(line)

    def repair(self) -> None:
        """Drop a torn last line so later appends start on a fresh line."""
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            with open(self.path, "r+b") as fh:
                fh.truncate(len(keep))
                os.fsync(fh.fileno())
