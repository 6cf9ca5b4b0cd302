"""Chart renderers for the chart pool's tests: module-level functions, so a spawned pool
process can import them by name, standing in for `bot.charts.report_chart` when a test needs
a process that dies or one that says which process it is."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bot.charts import report_chart
from bot.domain.reports import CaseStats


def crash_on_title(stats: CaseStats, title: str, labels: dict[str, str]) -> bytes:
    """The real chart, except that a title containing "crash" kills its process at once."""
    if "crash" in title:
        os._exit(3)
    return report_chart(stats, title, labels)


def always_crash(stats: CaseStats, title: str, labels: dict[str, str]) -> bytes:
    """Every chart kills its process (a process killed by the kernel looks the same)."""
    os._exit(3)


def meet_another_process(stats: CaseStats, title: str, labels: dict[str, str]) -> bytes:
    """The rendering process's id, once two processes have checked in: the title names a
    folder where each leaves its id and which it watches (for up to a minute). A pool that
    rendered in one process only would keep each chart waiting, alone, that minute."""
    folder = Path(title)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    return str(os.getpid()).encode()
