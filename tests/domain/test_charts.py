"""The report chart: the data reaches the figure, a reused figure draws what a fresh one does,
and the process pool renders the same PNG as the bot's own process, in several processes,
survives a process that dies (only that chart fails) and shuts down."""

from __future__ import annotations

import asyncio
import io
import logging
import multiprocessing
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bot.charts
from bot.charts import SIZE_INCHES, ChartFailed, ChartRenderer, drawn, report_chart
from bot.domain.model import Severity
from bot.domain.reports import CaseFact, CaseStats, case_stats
from testkit.charts import crash_on_title, meet_another_process

S1, S2, S3, S4, S5 = Severity
T0 = datetime(2026, 10, 1, tzinfo=UTC)
M = timedelta(minutes=1)
EN = {"cases": "Cases opened", "attainment": "SLA attainment %", "severity": "Severity"}
ZH = {"cases": "新建工单数", "attainment": "SLA 达成率 %", "severity": "严重级别"}


def fact(sev: Severity, answered_after: timedelta | None, target: timedelta) -> CaseFact:
    return CaseFact(sev, T0, T0 + target, None if answered_after is None else T0 + answered_after,
                    None, False)


# S1: 3 opened, 2 of 3 answered in time; S2: 1, late; S3: 2, none answered; S4, S5: none
BUSY = case_stats([fact(S1, 5 * M, 10 * M), fact(S1, 8 * M, 10 * M), fact(S1, 30 * M, 10 * M),
                   fact(S2, 40 * M, 30 * M), fact(S3, None, 60 * M), fact(S3, None, 60 * M)])
# another month: only S5, answered in time
QUIET = case_stats([fact(S5, 1 * M, 60 * M)])


def image(png: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(png))
    img.load()
    return img


def names_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_the_data_reaches_the_figure() -> None:
    fig = drawn(BUSY, "Service report 2026-10", EN)
    ax, ax2 = fig.axes
    assert [bar.get_height() for bar in ax.patches] == [3, 1, 2, 0, 0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["S1", "S2", "S3", "S4", "S5"]
    counts = [t.get_text() for t in ax.texts]
    assert counts == ["3", "1", "2", "", ""]
    (points,) = ax2.lines
    assert list(points.get_xdata()) == [0, 1]  # S3 has no answered case: no point
    assert [round(y, 1) for y in points.get_ydata()] == [66.7, 0.0]
    assert [t.get_visible() for t in ax2.texts] == [True, True, False, False, False]
    assert [t.get_text() for t in ax2.texts[:2]] == ["66.7%", "0.0%"]
    assert ax.get_title() == "Service report 2026-10"
    assert (ax.get_xlabel(), ax.get_ylabel(), ax2.get_ylabel()) == \
        ("Severity", "Cases opened", "SLA attainment %")
    assert ax.get_ylim()[1] == pytest.approx(3.6)

    # the next chart on the same figure shows only its own data
    fig = drawn(QUIET, "2026年11月服务报告", ZH)
    ax, ax2 = fig.axes
    assert [bar.get_height() for bar in ax.patches] == [0, 0, 0, 0, 1]
    assert [t.get_text() for t in ax.texts] == ["", "", "", "", "1"]
    assert list(ax2.lines[0].get_xdata()) == [4]
    assert [t.get_visible() for t in ax2.texts] == [False, False, False, False, True]
    assert ax2.texts[4].get_text() == "100.0%"
    assert (ax.get_title(), ax.get_ylabel(), ax2.get_ylabel()) == \
        ("2026年11月服务报告", "新建工单数", "SLA 达成率 %")


def test_a_reused_figure_draws_what_a_fresh_one_does() -> None:
    first = report_chart(BUSY, "Service report 2026-10", EN)
    other = report_chart(QUIET, "2026年11月服务报告", ZH)
    again = report_chart(BUSY, "Service report 2026-10", EN)
    assert again == first and other != first
    img = image(first)
    assert img.format == "PNG"
    assert img.size == (int(SIZE_INCHES[0] * 100), int(SIZE_INCHES[1] * 100))
    # the bars are drawn: the bars' blue is in the picture, and more of it for more cases
    blue = (0x4C, 0x72, 0xB0)

    def blue_pixels(png: bytes) -> int:
        colors = image(png).convert("RGB").getcolors(maxcolors=1 << 20) or []
        return sum(n for n, color in colors if color == blue)

    assert blue_pixels(first) > blue_pixels(report_chart(case_stats([]), "x", EN)) == 0


def busier(n: int) -> CaseStats:
    """BUSY with `n` more S4 cases, answered in time: a taller left axis from n = 3 on."""
    return case_stats([*(fact(S4, 2 * M, 10 * M) for _ in range(n)),
                       fact(S1, 5 * M, 10 * M), fact(S1, 8 * M, 10 * M),
                       fact(S1, 30 * M, 10 * M), fact(S3, None, 60 * M)])


def test_a_chart_drawn_over_its_kept_background_is_a_full_draw_pixel_for_pixel() -> None:
    """Only the bars, points, counts, notes and the lines they touch are drawn per chart,
    over a background kept per title, labels and left axis: the PNG must hold exactly the
    pixels a full draw of the figure makes, whether its background was kept or new."""
    charts = [(BUSY, "Service report 2026-10", EN), (QUIET, "2026年11月服务报告", ZH),
              (BUSY, "Service report 2026-10", EN), (case_stats([]), "Service report", EN),
              *((busier(n), "Service report 2026-10", EN) for n in range(6)),
              (QUIET, "2026年11月服务报告", ZH), (busier(4), "2026年11月服务报告", ZH)]
    for stats, title, labels in charts:
        got = np.asarray(image(report_chart(stats, title, labels)).convert("RGBA"))
        fig = drawn(stats, title, labels)
        fig.canvas.draw()  # the whole figure, every artist in its order
        full = np.asarray(fig.canvas.buffer_rgba())  # type: ignore[attr-defined]
        assert got.shape == full.shape
        assert np.array_equal(got, full), (title, [r.opened for r in stats.rows])


def test_kept_backgrounds_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.charts, "BACKGROUNDS", 2)
    for n in range(5):
        report_chart(busier(n + 3), f"Service report {n}", EN)
    canvas = bot.charts._the_canvas(BUSY)
    assert len(canvas._backgrounds) == 2
    # the ones kept are the latest; an older chart is drawn again the same way
    assert report_chart(busier(3), "Service report 0", EN) == \
        report_chart(busier(3), "Service report 0", EN)


async def test_the_pool_renders_the_same_png_as_the_bot_process() -> None:
    charts = [(BUSY, "Service report 2026-10", EN), (QUIET, "2026年11月服务报告", ZH),
              (case_stats([]), "Service report 2026-09", EN), (BUSY, "x", ZH)]
    expected = [report_chart(*c) for c in charts]
    renderer = ChartRenderer(2)
    assert not renderer.started  # nothing starts before the first chart
    try:
        got = await asyncio.gather(*(renderer.render(*c) for c in charts))
        assert got == expected
        assert renderer.started and len(multiprocessing.active_children()) >= 2
    finally:
        await renderer.aclose()
    assert not renderer.started
    assert multiprocessing.active_children() == []  # the pool's processes are gone


async def test_the_pool_renders_in_two_processes_at_once_not_in_this_one(
        tmp_path: Path) -> None:
    renderer = ChartRenderer(2, render=meet_another_process)
    try:
        pids = await asyncio.gather(*(renderer.render(BUSY, str(tmp_path), EN)
                                      for _ in range(2)))
    finally:
        await renderer.aclose()
    processes = {int(p) for p in pids}
    assert len(processes) == 2 and os.getpid() not in processes
    assert names_in(tmp_path) == {str(p) for p in processes}


async def test_in_process_rendering_needs_no_pool() -> None:
    renderer = ChartRenderer(0)
    png = await renderer.render(BUSY, "Service report 2026-10", EN)
    assert png == report_chart(BUSY, "Service report 2026-10", EN)
    assert not renderer.started and multiprocessing.active_children() == []


async def test_a_dying_process_fails_only_its_own_chart(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.charts")
    renderer = ChartRenderer(2, render=crash_on_title)
    titles = ["one", "two", "crash", "three", "four"]
    try:
        results = await asyncio.gather(*(renderer.render(BUSY, t, EN) for t in titles),
                                       return_exceptions=True)
        # the charts caught in the broken pool were rendered again, each on its own
        for title, result in zip(titles, results, strict=True):
            if title == "crash":
                assert isinstance(result, ChartFailed)
            else:
                assert result == report_chart(BUSY, title, EN)
        # the pool broke once, then the crashing chart broke its spare process: two lines
        assert renderer.crashes == 2
        died = [r for r in caplog.records if "a chart process died" in r.getMessage()]
        assert len(died) == 2 and all(r.exc_info is None for r in died)
        # and the renderer goes on with fresh processes
        assert await renderer.render(QUIET, "later", EN) == report_chart(QUIET, "later", EN)
    finally:
        await renderer.aclose()
    assert multiprocessing.active_children() == []


def test_a_negative_number_of_processes_is_refused() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        ChartRenderer(-1)


def test_stats_type_is_what_the_report_makes() -> None:
    assert isinstance(BUSY, CaseStats) and len(BUSY.rows) == len(Severity)


PARENT = """
import asyncio, multiprocessing, sys, time
from bot.charts import ChartRenderer
from bot.domain.reports import case_stats

async def main():
    renderer = ChartRenderer(1)
    await renderer.render(case_stats([]), "x", {})
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    time.sleep(600)

asyncio.run(main())
"""


def gone(pid: int) -> bool:
    """No such process, or a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_pool_processes_end_when_the_bot_is_killed() -> None:
    """SIGKILL leaves the bot no time to shut its pool down: the pool's processes notice
    their parent is gone and end by themselves."""
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(root)}, cwd=root)
    try:
        assert parent.stdout is not None
        children = [int(p) for p in parent.stdout.readline().split()]
        assert children and not any(gone(p) for p in children)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    for _ in range(300):  # at most a minute on a loaded machine; a second or two when idle
        if all(gone(p) for p in children):
            break
        time.sleep(0.2)
    assert all(gone(p) for p in children)


@pytest.mark.parametrize(("text", "workers"), [("", None), ("0", 0), ("3", 3)])
def test_chart_workers_setting(text: str, workers: int | None) -> None:
    from bot.config import Settings

    assert Settings.from_env({"SUPPORTBOT_CHART_WORKERS": text}).chart_workers == workers
    assert ChartRenderer(workers).workers == (workers if workers is not None
                                              else os.cpu_count())


@pytest.mark.parametrize("text", ["-1", "two", "1.5", "100000"])
def test_a_bad_chart_workers_setting_names_the_variable(text: str) -> None:
    from bot.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="SUPPORTBOT_CHART_WORKERS must be a whole number"):
        Settings.from_env({"SUPPORTBOT_CHART_WORKERS": text})
