"""Selection toward a reference corpus: ``score: reference`` against self-influence, perplexity filtering and random.

On a finished ``curation_scale.py`` run folder (``--workdir``/n``N``: its corpus shards, θ*, token cache,
published ``score: self`` run, the horror-review reference and its held-out split), runs
``curation_scale_select.reference_selection``: ``curate`` with ``score: reference`` (the reference
members, the documents' losses under them, the cross-influence on the reference's mean loss) keeps
``--reference-budget`` of the scored documents' tokens; that token count is the budget of the three
other subsets (self-influence, lowest loss at θ*, random); a fresh small GPT-2 is trained
``--downstream-steps`` steps on each subset for each of ``--seeds`` and the reference's held-out
perplexity is measured. Writes ``benchmarks/results/OUT.json`` and a markdown table ``OUT.md``
with each subset's perplexity (mean ± half the range over seeds), topic share and junk share, and the
verdict: whether reference-GEX has the lowest mean perplexity of the four; ``notes`` added to the JSON
(a list of lines) are rendered below the table by ``--render``.

Run: ``.venv/bin/python benchmarks/curation_reference.py --docs 20000 --downstream-steps 600 --train-jobs 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results"
ORDER = ("reference-GEX", "self-GEX", "perplexity", "random")


def _mean_spread(values: list[float]) -> tuple[float, float]:
    return sum(values) / len(values), (max(values) - min(values)) / 2


def verdict(out: dict) -> dict:
    """Mean perplexity per subset and whether reference-GEX is the lowest (the target)."""
    means = {k: _mean_spread(out["subsets"][k]["perplexity"])[0] for k in ORDER if k in out["subsets"]}
    best = min(means, key=means.get)
    others = {k: v for k, v in means.items() if k != "reference-GEX"}
    runner = min(others, key=others.get)
    return {"lowest": best, "met": best == "reference-GEX",
            "reference_gex_minus_best_other": round(means["reference-GEX"] - others[runner], 2),
            "best_other": runner, "means": {k: round(v, 2) for k, v in means.items()}}


def markdown(out: dict) -> str:
    sel, v = out["selection"], out["verdict"]
    lines = [f"# Selection toward a reference corpus ({out['documents']:,} documents)", "",
             f"Pool: {sel['pool_documents']:,} scored documents (topic share {sel['pool_topic_share']:.3f}, junk share "
             f"{sel['pool_junk_share']:.3f}). Reference: {sel['reference_documents']} sentences of held-out horror "
             f"reviews; evaluation: {sel['reference_heldout_documents']} sentences of other held-out horror reviews. "
             f"Each subset about {sel['token_budget']:,} tokens (the stage's count). A fresh 2-block GPT-2 trained "
             f"{sel['downstream_steps']} AdamW steps (batch 32 windows of ≤ 64 tokens) per subset and seed; "
             f"mean ± half-range over seeds {sel['seeds']} (the selections come from one curation run, seed 0; "
             f"random is redrawn per seed). score: reference settings: {out['reference_settings']}. "
             f"{out['load']}.", "",
             "| subset | reference held-out perplexity | per seed | documents | tokens | junk share | topic share |",
             "|---|---|---|---|---|---|---|"]
    for k in ORDER:
        d = sel["subsets"][k]
        m, s = _mean_spread(d["perplexity"])
        jm, js = _mean_spread(d["junk_share"])
        tm, ts = _mean_spread(d["topic_share"])
        per = ", ".join(f"{p:.1f}" for p in d["perplexity"])
        lines.append(f"| {k} | {m:.2f} ± {s:.2f} | {per} | {d['documents'][0]} | {d['tokens'][0]} | "
                     f"{jm:.3f} ± {js:.3f} | {tm:.3f} ± {ts:.3f} |")
    lines += ["", f"Verdict: reference-GEX has the lowest mean reference perplexity of the four — "
              f"{'met' if v['met'] else 'missed'} (reference-GEX {v['means']['reference-GEX']:.2f}; best other: "
              f"{v['best_other']} {v['means'][v['best_other']]:.2f}; difference "
              f"{v['reference_gex_minus_best_other']:+.2f}).", ""]
    if out.get("notes"):
        lines += ["Notes:", ""] + [f"- {note}" for note in out["notes"]] + [""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=20000)
    p.add_argument("--workdir", default="/tmp/curation_scale")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--downstream-steps", type=int, default=600)
    p.add_argument("--reference-budget", type=float, default=0.5)
    p.add_argument("--train-jobs", type=int, default=2)
    p.add_argument("--reference-members", type=int, help="reference members (default: the config's)")
    p.add_argument("--reference-steps", type=int, help="SGD steps per reference member (default: the config's)")
    p.add_argument("--reference-lr", type=float, help="peak rate of the reference members (default: the config's)")
    p.add_argument("--out", default="curation_reference")
    p.add_argument("--render", action="store_true", help="rewrite OUT.md from OUT.json (e.g. after adding notes)")
    args = p.parse_args()
    if args.render:
        out = json.loads((RESULTS / f"{args.out}.json").read_text())
        (RESULTS / f"{args.out}.md").write_text(markdown(out))
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import curation_scale
    from curation_scale_select import reference_selection
    from influence_stage.orchestration.curate_config import CurateConfig

    folder = Path(args.workdir) / f"n{args.docs}"
    selection = reference_selection(folder, args.docs, args, curation_scale.demo_config, curation_scale.run_curate)
    fields = CurateConfig.model_fields
    settings = {k: getattr(args, k) if getattr(args, k) is not None else fields[k].default
                for k in ("reference_members", "reference_steps", "reference_lr")}
    out = {"documents": args.docs, "reference_settings": settings, "selection": selection,
           "load": curation_scale.load()}
    out["verdict"] = verdict(selection)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(out))
    print(json.dumps(out["verdict"]), flush=True)


if __name__ == "__main__":
    main()
