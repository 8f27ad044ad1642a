"""The dataset card of a published version: ``README.md`` in the Hugging Face card format.

Its YAML front matter names the data files (``configs:``), so ``datasets.load_dataset(<version
folder>)`` loads the cleaned rows (``data.parquet``) as the ``train`` split, and the manifest as the
``manifest`` config, instead of guessing splits from every file it finds (the Great Expectations
JSON under ``validation/`` was once taken as the only split). It also holds the features
(``dataset_info``). The body says what a reader of the data needs: counts in and out, what was
dropped or relabeled and why (the score, the threshold and how it was chosen), the features, the
stage version and the fingerprints of the source data and the configuration.

The same card, with the data paths under ``<name>/<version>/``, is the root ``README.md`` of a
Hugging Face Hub push (``influence_stage.publish.hub``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import datasets
import numpy as np
import pandas as pd
import yaml

from influence_stage.publish.layout import DATA_PARQUET, MANIFEST_PARQUET

MANIFEST_CONFIG = "manifest"
"""Name of the card's second config: ``datasets.load_dataset(folder, "manifest")`` loads the manifest."""

_ACTION_WORDS = {"drop": "dropped", "relabel": "relabeled", "reweight": "reweighted", "keep": "kept",
                 "prune": "pruned"}
_TOP_RELABELS = 10


_SIZE_CATEGORIES = ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
                    (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"),
                    (10**11, "10B<n<100B"), (10**12, "100B<n<1T"))


def _size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket of ``n`` rows."""
    return next((label for limit, label in _SIZE_CATEGORIES if n < limit), "n>1T")


def front_matter(meta: Mapping[str, Any], features: datasets.Features, *, prefix: str = "") -> dict[str, Any]:
    """The card's YAML front matter: the configs (data files), the features, the name and tags.

    Parameters
    ----------
    meta : mapping
        The version's ``meta.json`` content (``name``, ``version``, ``rows_out`` are read).
    features : datasets.Features
        The published rows' features.
    prefix : str, default ""
        Prepended to the data file paths: ``""`` for the version folder itself, ``"<name>/<version>/"``
        for the root card of a Hub repo.

    Returns
    -------
    dict
        ``configs`` (``default``: ``data.parquet`` as ``train``; ``manifest``: ``manifest.parquet``
        as ``train``), ``dataset_info`` (the default config's features), ``pretty_name``, ``tags``,
        ``size_categories``.
    """
    info = datasets.DatasetInfo(features=features)._to_yaml_dict()  # the Hub's own YAML form of features
    return {
        "pretty_name": f"{meta['name']} {meta['version']}",
        "tags": ["influence-stage", "data-cleaning"],
        "size_categories": [_size_category(int(meta.get("rows_out") or 0))],
        "configs": [
            {"config_name": "default", "default": True,
             "data_files": [{"split": "train", "path": f"{prefix}{DATA_PARQUET}"}]},
            {"config_name": MANIFEST_CONFIG,
             "data_files": [{"split": "train", "path": f"{prefix}{MANIFEST_PARQUET}"}]},
        ],
        "dataset_info": [{"config_name": "default", **info}],
    }


def _label_names(meta: Mapping[str, Any]) -> dict[Any, str]:
    """Label value → class name, from meta.json's ``classes`` / ``class_names`` (empty when absent)."""
    classes, names = meta.get("classes"), meta.get("class_names")
    if not classes or not names or len(classes) != len(names):
        return {}
    return {value: str(name) for value, name in zip(classes, names, strict=True)}


def _label(value: Any, names: Mapping[Any, str]) -> str:
    value = value.item() if hasattr(value, "item") else value
    name = names.get(value)
    return str(value) if name is None or name == str(value) else f"{name} ({value})"


def _counts_section(meta: Mapping[str, Any], manifest: pd.DataFrame) -> list[str]:
    rows_in, rows_out = int(meta.get("rows_in") or 0), int(meta.get("rows_out") or 0)
    lines = ["## Rows", "", "| | rows | share of input |", "| --- | ---: | ---: |"]

    def row(what: str, n: int) -> None:
        share = f"{n / rows_in:.1%}" if rows_in else "n/a"
        lines.append(f"| {what} | {n} | {share} |")

    row("input", rows_in)
    row("published", rows_out)
    if "is_issue" in manifest.columns:
        row("flagged", int(manifest["is_issue"].astype(bool).sum()))
    counts = meta.get("actions")
    if not counts and "status" in manifest.columns:  # a curation's manifest: kept / removed and why
        counts = {str(k): int(v) for k, v in manifest["status"].astype(str).value_counts().items()}
    for action, n in sorted((counts or {}).items(), key=lambda kv: (-kv[1], kv[0])):
        row(_ACTION_WORDS.get(action, action), int(n))
    return lines + [""]


def _why_section(meta: Mapping[str, Any]) -> list[str]:
    summary = meta.get("summary") or {}
    lines = ["## Why rows were acted on", ""]
    if "threshold" in summary:
        score = summary.get("score", "the stage's score")
        method = summary.get("threshold method")
        how = f" (chosen by `{method}`)" if method else ""
        lines.append(f"Every input row was scored by `{score}` (higher = more likely a wrong label or an atypical "
                     f"row). Rows scoring at or above the threshold **{float(summary['threshold']):.6g}**{how} "
                     "were flagged, and the configured action (see `config.json`) was applied to them.")
        if "estimated noise rate" in summary:
            lines.append(f"The estimated share of wrong labels was {float(summary['estimated noise rate']):.2%}.")
    else:
        lines.append("The decision rule of this version is recorded in `config.json`.")
    lines.append("`manifest.parquet` (config `manifest`) has one row per input row: its score, whether it was "
                 "flagged, the action taken, the given and the suggested label.")
    for warning in summary.get("warnings") or []:
        lines.append(f"\n> Warning: {warning}")
    return lines + [""]


def _issue_types_section(manifest: pd.DataFrame) -> list[str]:
    """Rows per issue type found (the manifest's ``is_<type>_issue`` columns), and the exact duplicates dropped."""
    flags = [c for c in manifest.columns if c.startswith("is_") and c.endswith("_issue")
             and c not in ("is_issue", "is_any_issue")]
    if not flags:
        return []
    n = max(len(manifest), 1)
    lines = ["## Issue types", "",
             "Besides label issues the stage looked for these issue types on its own features (cleanlab Datalab's "
             "issue managers; exact duplicates by an equal feature vector). By default only exact duplicates "
             "after their first copy are acted on (dropped); the others are reported in `manifest.parquet` "
             "(`is_<type>_issue`).", "", "| issue type | rows | share of input |", "| --- | ---: | ---: |"]
    for col in flags:
        found = int(manifest[col].fillna(False).astype(bool).sum())
        lines.append(f"| {col[3:-6].replace('_', ' ')} | {found} | {found / n:.1%} |")
    if "exact_duplicate_of" in manifest.columns:
        copies = int((manifest["exact_duplicate_of"].fillna(-1).astype("int64") >= 0).sum())
        lines += ["", f"Exact copies of an earlier row: {copies} (`exact_duplicate_of` names the first copy's "
                  "position in the input)."]
    return lines + [""]


def _classes_section(meta: Mapping[str, Any], manifest: pd.DataFrame) -> list[str]:
    if not {"action", "given_label"} <= set(manifest.columns):
        return []
    names = _label_names(meta)
    given = manifest["given_label"]
    action = manifest["action"].astype(str)
    lines = ["## By class", "", "| class | input rows | dropped | relabeled away | relabeled to |",
             "| --- | ---: | ---: | ---: | ---: |"]
    # suggested_label is empty (null) on flagged rows with no confident other label; relabeled rows always have one
    suggested = manifest["suggested_label"].astype(object) if "suggested_label" in manifest.columns \
        else given.astype(object)
    relabeled = (action == "relabel").to_numpy()
    values = list(names) if names else sorted(pd.unique(given).tolist(), key=str)
    for value in values:
        mine = (given == value).to_numpy(dtype=bool)
        to_value = np.asarray([v is not None and not pd.isna(v) and v == value for v in suggested], dtype=bool)
        lines.append(f"| {_label(value, names)} | {int(mine.sum())} | {int((mine & (action == 'drop')).sum())} | "
                     f"{int((mine & relabeled).sum())} | {int((relabeled & to_value).sum())} |")
    if relabeled.any():
        pairs = (pd.DataFrame({"given": given[relabeled].astype(object), "to": suggested[relabeled].astype(object)})
                 .value_counts().head(_TOP_RELABELS))
        lines += ["", "Most frequent relabels:", "", "| given | suggested | rows |", "| --- | --- | ---: |"]
        lines += [f"| {_label(g, names)} | {_label(t, names)} | {int(n)} |" for (g, t), n in pairs.items()]
    return lines + [""]


def _features_section(features: datasets.Features) -> list[str]:
    lines = ["## Features", "", "| column | type |", "| --- | --- |"]
    for column, feature in features.items():
        kind = type(feature).__name__
        if isinstance(feature, datasets.Value):
            kind = feature.dtype
        elif isinstance(feature, datasets.ClassLabel):
            kind = f"ClassLabel ({feature.num_classes} classes)"
        lines.append(f"| `{column}` | {kind} |")
    return lines + [""]


def _provenance_section(meta: Mapping[str, Any]) -> list[str]:
    lines = ["## Provenance", "",
             f"- published: {meta.get('created_utc', 'unknown')} by `{meta.get('package', 'influence_stage')}` "
             f"{meta.get('package_version', 'unknown')}",
             "- source data fingerprint (sha256 of the input rows' content): "
             f"`{meta.get('fingerprint') or 'not recorded'}`",
             f"- configuration fingerprint: `{meta.get('config_fingerprint') or 'not recorded'}`"]
    for suite, result in sorted((meta.get("validation") or {}).items()):
        verdict = "passed" if result.get("success") else "failed"
        lines.append(f"- validation suite `{suite}` (version {result.get('suite_version')}): {verdict}")
    return lines + [""]


def dataset_card(meta: Mapping[str, Any], features: datasets.Features, manifest: pd.DataFrame, *,
                 prefix: str = "") -> str:
    """The ``README.md`` text of a published version: YAML front matter, then the card's body.

    Parameters
    ----------
    meta : mapping
        The version's ``meta.json`` content, ``files`` not needed (the card is written before it):
        ``name``, ``version``, ``created_utc``, ``package_version``, ``rows_in``, ``rows_out``,
        ``actions``, ``fingerprint``, ``config_fingerprint``, ``classes``, ``class_names``,
        ``summary`` (``score``, ``threshold``, ``threshold method``, ``estimated noise rate``,
        ``warnings`` when the run recorded them), ``validation``.
    features : datasets.Features
        The published rows' features.
    manifest : pandas.DataFrame
        ``(n_in, ...)``, one row per input row, labels as the input's values.
    prefix : str, default ""
        Prepended to the data file paths of the front matter (``front_matter``).

    Returns
    -------
    str
        Markdown with a ``---`` YAML block first; deterministic for equal inputs.
    """
    yaml_text = yaml.safe_dump(front_matter(meta, features, prefix=prefix), sort_keys=False, allow_unicode=True)
    where = f"`{prefix.rstrip('/')}` in this repository" if prefix else "this folder"
    body = [f"# {meta['name']} — version {meta['version']}", "",
            f"A cleaned dataset published by influence_stage: the input's rows minus those dropped, with relabeled "
            f"labels where the stage relabeled, as Parquet in {where}.", "",
            "```python", "import datasets", "",
            'rows = datasets.load_dataset("<this folder or repo>", split="train")          # the cleaned rows',
            f'manifest = datasets.load_dataset("<this folder or repo>", "{MANIFEST_CONFIG}", split="train")'
            '  # one row per input row',
            "```", ""]
    body += _counts_section(meta, manifest)
    body += _why_section(meta)
    body += _issue_types_section(manifest)
    body += _classes_section(meta, manifest)
    body += _features_section(features)
    body += _provenance_section(meta)
    return "---\n" + yaml_text + "---\n\n" + "\n".join(body).rstrip() + "\n"
