"""The report of one cleaning run: figures (``plots``), a self-contained HTML page (``html``), a markdown
summary (``markdown``).

This package owns the step ``decisions → report``. It reads the decisions table (one row per input
row, columns ``row_id, score, gex_influence, label_quality, is_issue, action, given_label,
suggested_label, weight``, see ``influence_stage.decisions.decide.Decisions``) and draws:

- ``plot_score_histogram`` — the scores on a log axis with the threshold; GEX self-influence is
  a mean of squares, so it spans orders of magnitude and mislabeled rows form their own high mode
  that only shows on a log axis;
- ``plot_issues_per_class`` — rows flagged or acted on, per given class, split by action;
- ``plot_gallery`` — the most suspicious rows (images or texts) with ``given → suggested`` as one
  figure; the HTML report shows them with ``gallery_html`` instead (one thumbnail per image,
  texts as HTML text);
- ``plot_precision_recall`` — precision / recall against a ground-truth mask (demos and
  benchmarks only: real data has no such mask);
- ``plot_distributional_bias`` — per self-influence estimator, the log-score histograms of clean
  and truly mislabeled rows, to show which estimators separate the two groups (ground truth only).

Beside the figures, the report and the markdown summary list the flagged rows per
``(given label, suggested label)`` pair: which classes the flagged rows are suspected to belong to.

``build_report`` puts them into one HTML string with no external resources (figures are base64
PNGs, CSS is inline, scripts are forbidden by a Content-Security-Policy), ``write_report`` saves
it (with the user's umask), ``estimator_report_html`` builds it from a fitted estimator (the
notebook path: ``cleaner.report()``), and ``summary_markdown`` gives the short text used as a
Prefect markdown artifact and printed by ``make run``.

Figures are made with ``matplotlib.figure.Figure`` and an Agg canvas, never with ``pyplot``: no
global figure registry, no backend switch, safe in worker threads and under any ``MPLBACKEND``.
Every user string that goes into a figure is drawn with ``parse_math=False`` (a class name with
``$`` must not be parsed as TeX), and every user string that goes into HTML or markdown is escaped.
"""

from influence_stage.report.common import GALLERY_K, SECTION_TITLES, TOP_ROWS, precision_recall_at
from influence_stage.report.estimator import estimator_report_html
from influence_stage.report.gallery import gallery_html
from influence_stage.report.html import build_report, write_report
from influence_stage.report.markdown import summary_markdown
from influence_stage.report.plots import (
    plot_distributional_bias,
    plot_gallery,
    plot_issues_per_class,
    plot_precision_recall,
    plot_score_histogram,
)

__all__ = [
    "GALLERY_K", "SECTION_TITLES", "TOP_ROWS", "build_report", "estimator_report_html", "gallery_html",
    "plot_distributional_bias", "plot_gallery", "plot_issues_per_class", "plot_precision_recall",
    "plot_score_histogram", "precision_recall_at", "summary_markdown", "write_report",
]
