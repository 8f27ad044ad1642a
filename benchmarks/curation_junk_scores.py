"""Junk detection of each curation score, from the saved evidence of finished ``curation_scale.py`` runs.

A ``score: self`` run's manifest holds every scored document's GEX self-influence (``score``), its mean
token loss at θ* (``base_loss``) and its characters; its token cache gives its tokens. From these the
scores of the other rankings follow without another pass over the corpus, exactly as the stage computes
them (``engine.lm_scores``):

- ``gex``: GEX self-influence (``score: self``);
- ``perplexity``: mean token loss at θ* (the classic perplexity filter);
- ``perplexity/char``: total loss over characters (``lm_scores.loss_per_char``);
- ``self_or_perplexity``: the larger of the ``gex`` and ``perplexity/char`` rank fractions (the default);
- ``random``.

For each run, ``curation_scale.detection``'s junk AP and AUROC per junk kind, the ratio to perplexity's AP,
and the position statistic of ``self_or_perplexity`` (median score of the first vs the last 10% of the
rows, clean documents). Runs of other corpus seeds than the one on which
``self_or_perplexity`` was first seen (seed 0) are its held-out check.

Writes benchmarks/results/<out>.json and .md (default ``curation_junk_scores``).
Run: ``.venv/bin/python benchmarks/curation_junk_scores.py FOLDER [FOLDER ...]``, each the folder of a
size run (e.g. /tmp/curation_scale/n100000), optionally ``FOLDER:LABEL``.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "data"))
sys.path.insert(0, str(HERE.parent / "tests"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from influence_stage.engine.lm_scores import loss_per_char, self_or_perplexity  # noqa: E402

OUT = HERE / "results"


def evaluate(folder: Path, label: str) -> dict:
    """The junk AP / AUROC of each score (``curation_scale.detection``) and the position statistic of
    ``self_or_perplexity`` of one finished run."""
    from curation_scale import detection
    from curation_scale_select import stage_token_counts

    summary = json.loads((folder / "curate.summary.json").read_text())
    if summary.get("score", "self") != "self":
        raise SystemExit(f"{folder}: the run's score is {summary.get('score')!r}; this reads self-influence runs")
    manifests = sorted(glob.glob(str(folder / "published" / "*" / "v*" / "manifest.parquet")))
    if not manifests:
        raise SystemExit(f"{folder}: no published manifest")
    manifest = pd.read_parquet(manifests[0])
    truth = pd.read_parquet(folder / "truth.parquet")
    scored = manifest["score"].notna().to_numpy()
    n_tok = stage_token_counts(folder)
    if len(n_tok) != int(scored.sum()):
        raise SystemExit(f"{folder}: {len(n_tok)} token counts for {int(scored.sum())} scored documents")
    det = detection(manifest, truth, n_tok, seed=0)
    # the position statistic of the union (detection's is the self-influence's)
    union = np.full(len(manifest), np.nan)
    union[scored] = self_or_perplexity(manifest["score"].to_numpy()[scored],
                                       loss_per_char(manifest["base_loss"].to_numpy()[scored], n_tok,
                                                     manifest["n_chars"].to_numpy()[scored]))
    n, row = len(manifest), np.arange(len(manifest))
    clean = scored & (truth["kind"].to_numpy(dtype=object) == "clean")
    first, last = np.median(union[clean & (row < n // 10)]), np.median(union[clean & (row >= n - n // 10)])
    return {"label": label, "folder": str(folder), "scored": det["scored"], "junk": det["junk_scored"],
            "ap": det["ap"], "auroc": det["auroc"],
            "position": {"gex": det["position"]["ratio"], "self_or_perplexity": float(first / last)}}


def markdown(runs: list[dict]) -> str:
    names = list(runs[0]["ap"])
    lines = ["| run | scored (junk) | " + " | ".join(f"AP {n}" for n in names)
             + " | self_or_perplexity / perplexity | position first / last (self_or_perplexity) |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    for r in runs:
        p = r["position"]["self_or_perplexity"]
        lines.append(f"| {r['label']} | {r['scored']:,} ({r['junk']:,}) | "
                     + " | ".join(f"{r['ap'][n]:.3f}" for n in names)
                     + f" | {r['ap']['self_or_perplexity'] / r['ap']['perplexity']:.1f}× | {p:.3f} |")
    lines += ["", "AUROC per junk kind:", "",
              "| run | score | " + " | ".join(runs[0]["auroc"]["gex"]) + " |",
              "|---|---|" + "---|" * len(runs[0]["auroc"]["gex"])]
    for r in runs:
        for n in ("gex", "perplexity/char", "self_or_perplexity"):
            lines.append(f"| {r['label']} | {n} | " + " | ".join(f"{v:.2f}" for v in r["auroc"][n].values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="FOLDER or FOLDER:LABEL of finished size runs")
    parser.add_argument("--out", default="curation_junk_scores")
    args = parser.parse_args(argv)
    runs = []
    for item in args.folders:
        folder, _, label = item.partition(":")
        runs.append(evaluate(Path(folder), label or Path(folder).name))
    result = {"runs": runs}
    OUT.mkdir(exist_ok=True)
    (OUT / f"{args.out}.json").write_text(json.dumps(result, indent=2))
    (OUT / f"{args.out}.md").write_text(markdown(runs))
    print(markdown(runs))
    return result


if __name__ == "__main__":
    main()
