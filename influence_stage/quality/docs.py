"""Data Docs: a validation report rendered as static HTML next to the published version."""

from __future__ import annotations

import html
import json
import re
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


# Great Expectations' page template loads Bootstrap, jQuery, Vega and Font Awesome from CDNs, a logo
# from S3, a favicon from ``../static``, and links "Home" and the suite to a Data Docs *site* that an
# ephemeral context never builds. ``_offline_page`` removes those tags and rewrites those links; the
# page stays readable through ``_PAGE_STYLE`` (Bootstrap's ``collapse`` is then never hidden, so
# every detail is shown) and the two "Actions" buttons work through ``_PAGE_SCRIPT`` (no jQuery).
_REMOTE_TAG = re.compile(
    r"""<link\b[^>]*\bhref=["'](?:https?:)?//[^"']*["'][^>]*>"""
    r"""|<script\b[^>]*\bsrc=["'](?:https?:)?//[^"']*["'][^>]*>\s*</script>"""
    r"""|<link\b[^>]*\bhref=["']\.\./[^"']*favicon[^"']*["'][^>]*>""",
    re.IGNORECASE,
)
_REMOTE_IMG = re.compile(r"""<img\b[^>]*\bsrc=["'](?:https?:)?//[^"']*["'][^>]*>""", re.IGNORECASE | re.DOTALL)
_INLINE_SCRIPT = re.compile(r"<script>.*?</script>", re.IGNORECASE | re.DOTALL)
_SITE_LINK = re.compile(r"""href=["'](?:\.\./)+(?:index\.html|expectations/[^"']*)["']""")

_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; }
nav.navbar { display: flex; align-items: center; padding: 0 1em; border-bottom: 1px solid #ccc; }
.breadcrumb { display: flex; list-style: none; gap: .5em; margin: 0; padding: .5em; }
.breadcrumb-item + .breadcrumb-item::before { content: "/"; padding-right: .5em; color: #888; }
.container-fluid { padding: 1em 2em; }
.card { border: 1px solid #ddd; border-radius: 4px; margin: .5em 0; padding: .5em; }
.card-header { font-weight: bold; }
table { border-collapse: collapse; font-size: .9em; margin: .3em 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.btn { display: inline-block; border: 1px solid #888; border-radius: 3px; padding: 2px 8px; margin: 2px;
       cursor: pointer; }
.btn input { display: none; }
.text-danger { color: #b42318; } .text-success { color: #1a7f37; }
.fas, .fa { font-style: normal; }
"""

_PAGE_SCRIPT = """
function _geToggle(show) {
  document.querySelectorAll(".hide-succeeded-validation-target-child").forEach(function (el) {
    el.parentElement.style.display = show ? "" : "none"; });
  document.querySelectorAll(".hide-succeeded-validation-target").forEach(function (el) {
    el.style.display = show ? "" : "none"; });
}
function showAllValidations() { _geToggle(true); }
function hideSucceededValidations() { _geToggle(false); }
"""


def _offline_page(page: str, index_name: str) -> str:
    """A Great Expectations page that loads nothing from outside and links only to files that exist.

    Removes the CDN stylesheets and scripts, the remote logo and the favicon, and the inline scripts
    (they call jQuery); rewrites the "Home" and suite links (``../../../../../index.html``,
    ``…/expectations/<suite>.html``) to ``index_name``, the index page beside it that lists every
    expectation of the suite; adds ``_PAGE_STYLE`` and ``_PAGE_SCRIPT`` inline.
    """
    page = _REMOTE_TAG.sub("", page)
    page = _REMOTE_IMG.sub("<strong>Great Expectations</strong>", page)
    page = _INLINE_SCRIPT.sub("", page)
    page = _SITE_LINK.sub(f'href="{html.escape(index_name)}"', page)
    return page.replace("</head>", f"<style>{_PAGE_STYLE}</style><script>{_PAGE_SCRIPT}</script></head>", 1)


def render_data_docs(report: ValidationReport, out_dir: str | Path) -> Path:
    """Write the report as HTML: GE Data Docs pages per batch and an index page.

    Great Expectations builds Data Docs *sites* from a file-backed context's stores; an ephemeral
    context has none, so this calls GE's own page renderer (``ValidationResultsPageRenderer`` +
    ``DefaultJinjaPageView``, what the site builder uses) on each batch result and writes
    ``<suite>.<batch>.html``. Those pages load nothing from outside (``_offline_page``: GE's CDN
    stylesheets and scripts are replaced by a small inline style, its "Home" and suite links point
    to the index), so they read the same offline; the index ``<suite>.html`` is a self-contained
    table of every expectation linking to them. Every ``href`` and ``src`` in these files is either
    an anchor on the same page or one of these files.

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
        page.write_text(_offline_page(DefaultJinjaPageView().render(document), f"{report.suite}.html"),
                        encoding="utf-8")
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
    for c in report.checks:  # a passing first pass: each expectation it counted, 0 values flagged
        observed = c.get("observed_value")
        rows.append(
            f'<tr class="pass"><td class="status">pass</td>'
            f'<td><a href="{esc(pages.get("checks", ""))}">{esc(c["batch"])}</a> (counted)</td>'
            f"<td><code>{esc(c['key'])}</code></td><td>{esc(c['description'])}</td>"
            f"<td><code>{esc(str(c['column'] or ''))}</code></td><td><code>{esc(c['expectation_type'])}</code></td>"
            f"<td>{c['unexpected']}</td><td>{'' if observed is None else esc(f'observed {observed!r}')}</td></tr>"
        )
    params = esc(json.dumps(report.parameters, default=json_default, indent=1))
    links = " · ".join(f'<a href="{esc(p)}">{esc(b)}</a>' for b, p in pages.items())
    index = out / f"{report.suite}.html"
    index.write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Validation: {esc(report.suite)}</title><style>{_INDEX_STYLE}</style></head><body>"
        f"<h1>Suite <code>{esc(report.suite)}</code> (version {report.suite_version}): {status}</h1>"
        f"<p>{len(report.results) - n_failed} of {len(report.results)} expectation(s) passed"
        + (f" (the check summary: the {len(report.checks)} expectations of the batches, counted, flag no value)"
           if report.checks else "") + ". "
        f"Great Expectations Data Docs per batch: {links}</p>"
        "<table><thead><tr><th>status</th><th>batch</th><th>check</th><th>description</th><th>column</th>"
        "<th>expectation</th><th>unexpected</th><th>detail</th></tr></thead><tbody>"
        + "".join(rows)
        + f"</tbody></table><h2>Parameters</h2><pre>{params}</pre></body></html>\n",
        encoding="utf-8",
    )
    return index
