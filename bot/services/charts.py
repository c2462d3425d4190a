"""One PNG per summary, readable on a phone: the NPS split, its trend by week, and the
branches compared. Headless (Agg); labels in the reader's language."""

from __future__ import annotations

import io
from datetime import timedelta

from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure  # a bare Figure draws with Agg; pyplot is never loaded
from matplotlib.ticker import PercentFormatter

from bot.services.i18n import gettext as _
from bot.services.i18n import use_locale
from bot.services.results import Summary

GREEN, GREY, RED, BLUE = "#2e7d32", "#9e9e9e", "#c62828", "#1565c0"


def summary_chart(summary: Summary) -> bytes:
    """The chart that goes with a summary, as PNG bytes."""
    with use_locale(summary.locale):
        figure = Figure(figsize=(7, 9), dpi=110, layout="constrained")
        split, trend, branches = figure.subplots(3, 1, height_ratios=(1, 2, 3))
        nps = summary.scores.nps
        parts = (
            (nps.promoters, GREEN, _("Promoters")),
            (nps.passives, GREY, _("Passives")),
            (nps.detractors, RED, _("Detractors")),
        )
        left = 0
        for count, colour, label in parts:
            share = count / nps.count if nps.count else 0
            split.barh([0], [share], left=left, color=colour, label=label)
            left += share
        split.set_xlim(0, 1)
        split.xaxis.set_major_formatter(PercentFormatter(1.0))
        split.set_yticks([])
        split.set_title(_("NPS split"))
        split.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, frameon=False)

        weeks = [(start, s.score) for start, s in summary.weeks if s.score is not None]
        if weeks:
            trend.plot([w for w, _s in weeks], [s for _w, s in weeks], marker="o", color=BLUE)
        trend.axhline(0, color=GREY, linewidth=0.8)
        # A one-day period still needs a width to draw on.
        last = max(summary.period.last, summary.period.first + timedelta(days=1))
        trend.set_xlim(summary.period.first, last)
        trend.xaxis.set_major_formatter(DateFormatter("%d/%m"))
        trend.set_ylim(-100, 100)
        trend.set_title(_("NPS by week"))
        trend.tick_params(axis="x", labelrotation=30)

        ranked = [b for b in summary.branches if b.scores.nps.score is not None]
        names = [b.code for b in ranked][::-1]
        scores = [b.scores.nps.score for b in ranked][::-1]
        branches.barh(names, scores, color=[GREEN if (s or 0) >= 0 else RED for s in scores])
        branches.axvline(0, color=GREY, linewidth=0.8)
        branches.set_xlim(-100, 100)
        branches.set_title(_("NPS by branch"))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
