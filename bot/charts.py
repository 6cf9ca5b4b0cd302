"""PNG charts for the monthly service report, and the processes that render them.

`report_chart` draws with matplotlib's object API on an Agg canvas (no pyplot). Each process
makes its figure once (matplotlib imported, fonts looked up, axes and twin axis built) and
only sets values for each chart; the margins are fixed rather than computed by a tight
layout, which would cost a second draw of every chart. What charts share (title, axis labels,
ticks: the month's, the language's and the largest bar's) is drawn once and kept as pixels;
a chart draws only its bars, points and their labels over it, pixel for pixel what a full
draw makes, and is written as PNG by `png_rgba` (zlib level 1, one cheap filter).

`ChartRenderer` renders in a pool of processes (spawned, so safe beside the event loop and
its threads), one per core by default (`SUPPORTBOT_CHART_WORKERS`; 0 renders in a thread of
the bot's own process). Matplotlib is CPU work that holds the GIL: only processes use more
than one core. The pool starts with the first chart and is shut down with the worker. A
process that dies (killed, out of memory) breaks the whole pool: the charts it had in flight
are rendered again one at a time in a spare process, so only a chart that kills its process
twice fails (`ChartFailed`), and the others are not lost with it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import struct
import threading
import time
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from bot.domain.reports import CaseStats

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

_CJK_FAMILIES = ("Noto Sans CJK SC", "WenQuanYi Zen Hei", "SimHei")
_DEFAULT_LABELS = {
    "cases": "Cases opened",
    "attainment": "SLA attainment %",
    "severity": "Severity",
}
SIZE_INCHES = (8.0, 4.5)
DPI = 100  # 800 x 450 pixels
# fixed margins (fractions of the figure) that fit the title, both axis labels and tick
# labels up to four digits, as a tight layout would place them, without its extra draw
MARGINS = {"left": 0.095, "right": 0.905, "bottom": 0.13, "top": 0.915}
# zlib level 1: a few percent larger file than the default level 6, a fraction of the time
PNG_COMPRESS_LEVEL = 1
PNG_FILTER_UP = 2
# backgrounds kept per process (1.4 MB of pixels each): a month's reports in two languages
# need one per distinct largest bar
BACKGROUNDS = 32

Render = Callable[[CaseStats, str, dict[str, str]], bytes]


@lru_cache(maxsize=1)
def _font_families() -> tuple[str, ...]:
    """Installed CJK families first (if any), then matplotlib's default sans-serif."""
    from matplotlib import font_manager

    found: list[str] = []
    for family in _CJK_FAMILIES:
        try:
            font_manager.findfont(
                font_manager.FontProperties(family=family), fallback_to_default=False
            )
        except ValueError:
            continue
        found.append(family)
    return (*found, "sans-serif")


class _Canvas:
    """One figure, made once per process: the axes, the twin axis, the bars, their labels,
    the attainment points and their notes are built once; each chart only sets their values
    and texts (clearing the axes instead would rebuild every tick of both axes).

    Most of a chart does not change from one account to the next: the title and axis labels
    are the month's and the language's, the right axis is always 0-110 %, and the left axis
    depends only on the largest bar. That part (the background) is drawn once per such key
    and kept as pixels; a chart restores it and draws only its own artists on top (blitting),
    in the order a full draw would, so the pixels are the same as a full draw's."""

    def __init__(self, severities: tuple[str, ...]) -> None:
        from matplotlib import font_manager
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        self.severities = severities
        font = font_manager.FontProperties(family=list(_font_families()))
        title_font = font.copy()
        title_font.set_size("large")
        self.figure = Figure(figsize=SIZE_INCHES, dpi=DPI)
        self.canvas: Any = FigureCanvasAgg(self.figure)  # its blitting methods are untyped
        self.figure.subplots_adjust(**MARGINS)
        self.ax: Axes = self.figure.add_subplot()
        self.ax2: Axes = self.ax.twinx()
        ax, ax2 = self.ax, self.ax2
        xs = list(range(len(severities)))
        self.bars = list(ax.bar(xs, [0] * len(xs), color="#4C72B0", width=0.6))
        self.counts = [ax.text(x, 0, "", ha="center", va="center", color="white",
                               fontweight="bold") for x in xs]
        ax.set_xticks(xs, list(severities))
        ax.set_xlim(ax.get_xlim())  # fixed by the bars' widths, whatever their heights
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(" ", fontproperties=font)
        ax.set_ylabel(" ", fontproperties=font)
        ax.set_title(" ", fontproperties=title_font, y=1.0)  # placed: no search for room
        (self.points,) = ax2.plot([], [], color="#DD8452", marker="D", linestyle="none")
        self.notes = [ax2.annotate(
            "", (x, 0), textcoords="offset points", xytext=(0, 7), ha="center",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
        ) for x in xs]
        ax2.set_ylim(0, 110)
        ax2.set_ylabel(" ", fontproperties=font)
        self.lock = threading.Lock()  # in-process rendering may come from several threads
        # backgrounds by (title, labels, top of the left axis), most recently used last
        self._backgrounds: OrderedDict[tuple[object, ...], Any] = OrderedDict()
        self._key: tuple[object, ...] = ()

    def draw(self, stats: CaseStats, title: str, labels: dict[str, str]) -> None:
        """Cases opened per severity as bars, SLA attainment % per severity on the right."""
        text = {**_DEFAULT_LABELS, **labels}
        opened = [row.opened for row in stats.rows]
        for bar, label, n in zip(self.bars, self.counts, opened, strict=True):
            bar.set_height(n)
            label.set_text(str(n) if n else "")
            label.set_y(n / 2)
        top = max([*opened, 1]) * 1.2
        self.ax.set_ylim(0, top)
        px: list[float] = []
        py: list[float] = []
        for x, (row, note) in enumerate(zip(stats.rows, self.notes, strict=True)):
            note.set_visible(bool(row.responded))
            if row.responded:
                y = row.within_target / row.responded * 100
                px.append(x)
                py.append(y)
                note.xy = (x, y)
                note.set_text(f"{y:.1f}%")
        self.points.set_data(px, py)
        self.ax.title.set_text(title)
        self.ax.xaxis.label.set_text(text["severity"])
        self.ax.yaxis.label.set_text(text["cases"])
        self.ax2.yaxis.label.set_text(text["attainment"])
        self._key = (title, text["severity"], text["cases"], text["attainment"], top)

    def _over(self) -> list[Artist]:
        """What a chart draws over its background, in a full draw's order (by zorder, axes
        by axes): the first axes' bars (1), x tick marks (1.5: the axis), frame (2.5) and
        counts (3); then the twin's right tick marks (1.5), points (2), frame (2.5) and
        notes (3). The tick marks and frames are left out of the background because the
        bars' and points' edges meet them, and over is not commutative (black over blue is
        not blue over black); drawing them in the background too would darken their edges."""
        ticks = [tick.tick1line for tick in self.ax.xaxis.get_major_ticks()]
        low, high = self.ax2.get_ylim()
        right = [tick.tick2line for tick in self.ax2.yaxis.get_major_ticks()
                 if low <= tick.get_loc() <= high]  # as an axis draws only those in view
        return [*self.bars, *ticks, *self.ax.spines.values(), *self.counts,
                *right, self.points, *self.ax2.spines.values(), *self.notes]

    def _background(self) -> Any:
        """The pixels of everything but `_over()` for this chart's key (drawn on a miss)."""
        found = self._backgrounds.get(self._key)
        if found is not None:
            self._backgrounds.move_to_end(self._key)
            return found
        over = self._over()
        shown = [artist.get_visible() for artist in over]
        for artist in over:
            artist.set_visible(False)
        try:
            self.canvas.draw()
        finally:
            for artist, visible in zip(over, shown, strict=True):
                artist.set_visible(visible)
        background = self.canvas.copy_from_bbox(self.figure.bbox)
        self._backgrounds[self._key] = background
        while len(self._backgrounds) > BACKGROUNDS:
            self._backgrounds.popitem(last=False)
        return background

    def pixels(self) -> Any:
        """The drawn chart as an RGBA array (height x width x 4), valid until the next."""
        import numpy as np

        background = self._background()
        self.canvas.restore_region(background)
        renderer = self.canvas.get_renderer()
        for artist in self._over():
            if artist.get_visible():
                artist.draw(renderer)
        return np.asarray(self.canvas.buffer_rgba())

    def png(self) -> bytes:
        return png_rgba(self.pixels())


def png_rgba(rgba: Any) -> bytes:
    """An RGBA image as a PNG (8 bits a channel): each row filtered as the difference from
    the row above ("Up": a chart's rows mostly repeat, so they become zeros), deflated at
    zlib level 1. For a chart: 2.6 ms of CPU where Pillow's encoder at the same level took
    6.6 ms, for a file 2 % larger (about 33 KB)."""
    import numpy as np

    height, width = rgba.shape[:2]
    pixels = rgba.reshape(height, width * 4)
    rows = np.empty((height, 1 + width * 4), dtype=np.uint8)
    rows[:, 0] = PNG_FILTER_UP
    rows[0, 0] = 0  # the first row has no row above: unfiltered
    rows[0, 1:] = pixels[0]
    np.subtract(pixels[1:], pixels[:-1], out=rows[1:, 1:])  # modulo 256, as PNG's is

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # RGBA, no interlace
    return b"".join((b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header),
                     chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_COMPRESS_LEVEL)),
                     chunk(b"IEND", b"")))


_canvas: _Canvas | None = None
_canvas_lock = threading.Lock()


def _the_canvas(stats: CaseStats) -> _Canvas:
    """This process's figure, built for these severities (always the same five)."""
    global _canvas
    severities = tuple(row.severity.value for row in stats.rows)
    with _canvas_lock:
        if _canvas is None or _canvas.severities != severities:
            _canvas = _Canvas(severities)
        return _canvas


def drawn(stats: CaseStats, title: str, labels: dict[str, str]) -> Figure:
    """Draw a chart on this process's figure and return the figure (to look at its data);
    the caller holds nothing: the next chart clears it."""
    canvas = _the_canvas(stats)
    with canvas.lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing CJK glyphs when no CJK font is installed
        canvas.draw(stats, title, labels)
    return canvas.figure


def report_chart(stats: CaseStats, title: str, labels: dict[str, str]) -> bytes:
    """The report's chart as PNG bytes (800 x 450)."""
    canvas = _the_canvas(stats)
    with canvas.lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing CJK glyphs when no CJK font is installed
        canvas.draw(stats, title, labels)
        return canvas.png()


def _exit_with(parent: int) -> None:
    """End this process once its parent is gone: a bot killed with SIGKILL cannot shut its
    pool down, and a pool process would otherwise wait for work forever."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def warm() -> None:
    """A pool process's start: it ends with its parent; Ctrl-C is the parent's to handle (it
    shuts the pool down); matplotlib imported, the figure built and one chart drawn, so fonts
    and text layout are cached before the first real chart."""
    threading.Thread(target=_exit_with, args=(os.getppid(),), name="parent-watch",
                     daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from bot.domain.reports import case_stats

    report_chart(case_stats([]), "warm-up", {})


def default_workers() -> int:
    """One chart process per core."""
    return max(1, os.cpu_count() or 1)


class ChartFailed(Exception):
    """This chart could not be rendered (its process died each time it was tried)."""


class ChartRenderer:
    """Renders report charts in a process pool (`workers` processes; 0: in this process, in
    a thread). The pool starts with the first chart; `aclose()` shuts it down."""

    def __init__(self, workers: int | None = None, render: Render = report_chart) -> None:
        self.workers = default_workers() if workers is None else workers
        if self.workers < 0:
            raise ValueError("chart workers must be 0 or more")
        self._render = render
        self._pool: ProcessPoolExecutor | None = None
        self._spare: ProcessPoolExecutor | None = None  # retries after a crash, one at a time
        self._state_lock = threading.Lock()
        self._retry_turn: asyncio.Lock | None = None
        self.crashes = 0  # pools broken by a dying process (for logs and tests)

    @property
    def started(self) -> bool:
        return self._pool is not None or self._spare is not None

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=warm)

    def _main(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = self._new_pool(self.workers)
        return self._pool

    def _spare_pool(self) -> ProcessPoolExecutor:
        if self._spare is None:
            self._spare = self._new_pool(1)
        return self._spare

    async def render(self, stats: CaseStats, title: str, labels: dict[str, str]) -> bytes:
        """The chart's PNG; `ChartFailed` if its process died in both tries. Errors raised
        by the drawing itself come through as they are."""
        if self.workers == 0:
            return await asyncio.to_thread(self._render, stats, title, labels)
        try:
            return await self._submit(self._main, stats, title, labels)
        except BrokenProcessPool:
            pass  # logged once per broken pool; this chart is tried again on its own
        if self._retry_turn is None:
            self._retry_turn = asyncio.Lock()
        async with self._retry_turn:  # alone in the spare process: a crash now is its own
            try:
                return await self._submit(self._spare_pool, stats, title, labels)
            except BrokenProcessPool as exc:
                raise ChartFailed("its chart process died twice while rendering it") from exc

    async def _submit(self, pool_of: Callable[[], ProcessPoolExecutor], stats: CaseStats,
                      title: str, labels: dict[str, str]) -> bytes:
        pool = pool_of()
        try:
            future: Future[bytes] = pool.submit(self._render, stats, title, labels)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._discard(pool)
            raise

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Forget a broken pool (once, whichever of its charts notices first); the next
        chart starts a new one."""
        with self._state_lock:
            if pool is self._pool:
                self._pool = None
                what = "the charts it had in flight are rendered again one at a time"
            elif pool is self._spare:
                self._spare = None
                what = "the chart it was rendering alone fails"
            else:
                return
            self.crashes += 1
        log.warning("a chart process died; %s", what)
        pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """Shut the processes down (charts still queued are cancelled)."""
        pools = [p for p in (self._pool, self._spare) if p is not None]
        self._pool = self._spare = None
        for pool in pools:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def close(self) -> None:
        pools = [p for p in (self._pool, self._spare) if p is not None]
        self._pool = self._spare = None
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return f"ChartRenderer(workers={self.workers}, {'started' if self.started else 'idle'})"
