"""PNG charts for the monthly service report (matplotlib object API, Agg canvas, no pyplot)."""

from __future__ import annotations

import io
import warnings
from functools import lru_cache

from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.domain.reports import CaseStats

_CJK_FAMILIES = ("Noto Sans CJK SC", "WenQuanYi Zen Hei", "SimHei")
_DEFAULT_LABELS = {
    "cases": "Cases opened",
    "attainment": "SLA attainment %",
    "severity": "Severity",
}


@lru_cache(maxsize=1)
def _font_families() -> tuple[str, ...]:
    """Installed CJK families first (if any), then matplotlib's default sans-serif."""
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


def report_chart(stats: CaseStats, title: str, labels: dict[str, str]) -> bytes:
    """Bar chart of cases opened per severity, with SLA attainment % per severity on a 2nd axis."""
    text = {**_DEFAULT_LABELS, **labels}
    font = font_manager.FontProperties(family=list(_font_families()))
    names = [row.severity.value for row in stats.rows]
    xs = list(range(len(stats.rows)))
    opened = [row.opened for row in stats.rows]

    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bars = ax.bar(xs, opened, color="#4C72B0", width=0.6)
    counts = [str(n) if n else "" for n in opened]
    ax.bar_label(bars, labels=counts, label_type="center", color="white", fontweight="bold")
    ax.set_xticks(xs, names)
    ax.set_xlabel(text["severity"], fontproperties=font)
    ax.set_ylabel(text["cases"], fontproperties=font)
    ax.set_ylim(0, max([*opened, 1]) * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    title_font = font.copy()
    title_font.set_size("large")
    ax.set_title(title, fontproperties=title_font)

    ax2 = ax.twinx()
    points = [
        (x, row.within_target / row.responded * 100)
        for x, row in zip(xs, stats.rows, strict=True)
        if row.responded
    ]
    if points:
        px, py = zip(*points, strict=True)
        ax2.plot(px, py, color="#DD8452", marker="D", linestyle="none")
        for x, y in points:
            ax2.annotate(
                f"{y:.1f}%",
                (x, y),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
            )
    ax2.set_ylim(0, 110)
    ax2.set_ylabel(text["attainment"], fontproperties=font)

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing CJK glyphs when no CJK font is installed
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
