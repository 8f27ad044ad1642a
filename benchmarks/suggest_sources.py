"""Relabel suggestions by evidence source on sklearn digits (1,797 rows, 64 features, the default MLP).

For the rows the default run flags: relabel coverage and accuracy when the suggestion comes from the
members' mean probabilities, the cross-fitted probabilities, or their mean (``detect_images.suggestion_sources``);
beside them the stage's own suggestions (the fitted run decided with ``action="relabel"``) and cleanlab's
``predicted_label`` (argmax of 5-fold probabilities of the same MLP and recipe) on the same relabeled rows.
Writes benchmarks/results/suggest_sources.json and .md.
Run: .venv/bin/python benchmarks/suggest_sources.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from sklearn.datasets import load_digits

from common import check, fit_public, machine, measure_public, targets_markdown, write_json, write_markdown
from detect_images import suggestion_sources
from influence_stage.data.noise import flip_labels

RATES = (0.1, 0.2)


def main() -> None:
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    results = []
    for rate in RATES:
        y_noisy, flipped = flip_labels(y, rate, random_state=0)
        # the cap raised so the noisier setting is measured, not refused (the planted rate is known here)
        cleaner, run = fit_public(X.astype(np.float32), seed=0, y=y_noisy, cleaner_kwargs={"max_drop_fraction": 1.0})
        flags = cleaner.issues_["is_issue"].to_numpy()
        aux = getattr(cleaner.result_, "auxiliary", None)
        results.append({"setting": f"digits uniform {rate:.0%}", "seed": 0, "n_rows": int(len(y)),
                        "n_flagged": int(flags.sum()), "precision": float(flipped[flags].mean()),
                        "estimated_noise_rate": cleaner.estimated_noise_rate_,
                        "auxiliary_accuracy": None if aux is None else aux.accuracy,
                        "auxiliary_epochs": None if aux is None else list(aux.epochs),
                        "stage": measure_public(cleaner, run, y, flipped, seed=0),
                        "sources": suggestion_sources(cleaner, flags, y)})
        print(results[-1]["setting"], results[-1]["stage"]["relabel"], flush=True)
    print(f"wrote {write_json('suggest_sources', {'machine': machine(), 'results': results})}")
    print(f"wrote {write_markdown('suggest_sources', markdown(results))}")


def markdown(results: list[dict]) -> str:
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["## Relabel suggestions by evidence source (`benchmarks/suggest_sources.py`)", "",
             "sklearn digits (1,797 rows, 64 features), uniform flips, seed 0, the default MLP through "
             "`InfluenceCleaner` (drop cap raised to 1.0). For the rows the default run flags: coverage (share of "
             "flagged rows a rule relabels) and accuracy (relabeled rows given their true label) per source and rule "
             "(`detect_images.suggestion_sources`: `argmax` relabels when the argmax differs from the given label with "
             "p ≥ 0.5; `other`: the best other label when its p ≥ 0.5; `other-conditional`: the same with the given "
             "label's probability taken out). Stage = the fitted run decided with `action=\"relabel\"`; CL pred = "
             "cleanlab's `predicted_label` accuracy on the stage's relabeled rows.", ""]
    for r in results:
        st = r["stage"]
        lines += [f"### {r['setting']} ({r['n_flagged']} flagged, precision {r['precision']:.3f}, estimated rate "
                  f"{f(r['estimated_noise_rate'])}, auxiliary accuracy {f(r['auxiliary_accuracy'])})", "",
                  "| source / rule | coverage | accuracy |", "|---|---|---|"]
        for name, v in r["sources"].items():
            lines.append(f"| {name} | {f(v['coverage'])} | {f(v['accuracy'])} |")
        rl = st["relabel"]
        lines += [f"| **stage (`action=\"relabel\"`)** | {f(rl['coverage'])} | {f(rl['accuracy'])} |",
                  f"| cleanlab `predicted_label` on the stage's relabeled rows | — | "
                  f"{f(st['cleanlab']['predicted_label_accuracy_on_relabeled'])} |", ""]
    checks = []
    for r in results:
        rl, cl = r["stage"]["relabel"], r["stage"]["cleanlab"]
        checks.append(check(r["setting"], "relabel accuracy ≥ 0.95", rl["accuracy"], 0.95))
        checks.append(check(r["setting"], "relabel accuracy ≥ cleanlab predicted_label accuracy on the same rows",
                            rl["accuracy"], cl["predicted_label_accuracy_on_relabeled"]))
        checks.append(check(r["setting"], "suggested = given on flagged rows (count) = 0",
                            float(rl["suggested_equals_given_on_flagged"]), 0.0, "<="))
    return "\n".join(lines) + "\n" + targets_markdown(checks, "Targets")


if __name__ == "__main__":
    main()
