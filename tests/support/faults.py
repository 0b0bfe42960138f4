"""Real faults for the fault tests and the chaos benchmark: another process holding the SQLite
catalog's write lock; the reader child of a loader process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_HOLD_LOCK = """\
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute('BEGIN IMMEDIATE')
print('locked', flush=True)
time.sleep(float(sys.argv[2]))
db.execute('ROLLBACK')
"""


def hold_write_lock(database: Path, seconds: float) -> subprocess.Popen:
    """Another process takes SQLite's write lock on ``database`` and holds it for ``seconds``
    (returns once it is held): every writer waits for its busy timeout, then fails."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(database), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def reader_child_of(pid: int) -> int | None:
    """The ``ingest.reader_process`` child of process ``pid`` (None: it has none now)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid and b"ingest.reader_process" in (stat.parent / "cmdline").read_bytes():
                return int(stat.parent.name)
        except (OSError, IndexError, ValueError):
            continue
    return None
