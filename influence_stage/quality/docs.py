"""Data Docs: a validation report rendered as static HTML next to the published version."""

from __future__ import annotations

import html
import json
from pathlib import Path

from influence_stage.errors import (
    InvalidTypeError,
)
from influence_stage.quality.gate import ValidationReport, failure_line, json_default
from influence_stage.quality.suites import gx_modules



_INDEX_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr.fail td { background: #fde8e8; }
tr.pass td.status { color: #1a7f37; }
tr.fail td.status { color: #b42318; font-weight: bold; }
code { font-size: 0.95em; }
"""


def render_data_docs(report: ValidationReport, out_dir: str | Path) -> Path:
    """Write the report as HTML: GE Data Docs pages per batch and an index page.

    Great Expectations builds Data Docs *sites* from a file-backed context's stores; an ephemeral
    context has none, so this calls GE's own page renderer (``ValidationResultsPageRenderer`` +
    ``DefaultJinjaPageView``, what the site builder uses) on each batch result and writes
    ``<suite>.<batch>.html``. Those pages take their CSS and JavaScript from CDNs (unstyled
    offline), so the index ``<suite>.html`` is a self-contained table of every expectation
    (readable offline) linking to them.

    Parameters
    ----------
    report : ValidationReport
        A report from ``validate_input`` or ``validate_output``.
    out_dir : str or Path
        Created if missing; existing files of the same names are replaced.

    Returns
    -------
    Path
        The index page ``out_dir / f"{report.suite}.html"``.
    """
    if not isinstance(report, ValidationReport):
        raise InvalidTypeError(f"report must be a ValidationReport; found {type(report).__name__}.")
    gx_modules()
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pages = {}
    for batch, result in report.ge_results.items():
        document = ValidationResultsPageRenderer().render(result)
        page = out / f"{report.suite}.{batch}.html"
        page.write_text(DefaultJinjaPageView().render(document), encoding="utf-8")
        pages[batch] = page.name

    esc = html.escape
    status = "passed" if report.success else "FAILED"
    n_failed = sum(not r["success"] for r in report.results)
    rows = []
    for r in report.results:
        detail = "" if r["success"] else failure_line(r)
        if r["success"] and r["observed_value"] is not None and not isinstance(r["observed_value"], list):
            detail = f"observed {r['observed_value']!r}"
        rows.append(
            f'<tr class="{"pass" if r["success"] else "fail"}">'
            f'<td class="status">{"pass" if r["success"] else "FAIL"}</td>'
            f'<td><a href="{esc(pages.get(r["batch"], ""))}">{esc(r["batch"])}</a></td>'
            f"<td><code>{esc(r['key'])}</code></td><td>{esc(r['description'])}</td>"
            f"<td><code>{esc(str(r['column'] or ''))}</code></td><td><code>{esc(r['expectation_type'])}</code></td>"
            f"<td>{'' if r['unexpected_count'] is None else r['unexpected_count']}</td><td>{esc(detail)}</td></tr>"
        )
    params = esc(json.dumps(report.parameters, default=json_default, indent=1))
    links = " · ".join(f'<a href="{esc(p)}">{esc(b)}</a>' for b, p in pages.items())
    index = out / f"{report.suite}.html"
    index.write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Validation: {esc(report.suite)}</title><style>{_INDEX_STYLE}</style></head><body>"
        f"<h1>Suite <code>{esc(report.suite)}</code> (version {report.suite_version}): {status}</h1>"
        f"<p>{len(report.results) - n_failed} of {len(report.results)} expectation(s) passed. "
        f"Great Expectations Data Docs per batch: {links}</p>"
        "<table><thead><tr><th>status</th><th>batch</th><th>check</th><th>description</th><th>column</th>"
        "<th>expectation</th><th>unexpected</th><th>detail</th></tr></thead><tbody>"
        + "".join(rows)
        + f"</tbody></table><h2>Parameters</h2><pre>{params}</pre></body></html>\n",
        encoding="utf-8",
    )
    return index
