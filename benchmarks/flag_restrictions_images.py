"""``flag_restrictions.py`` on images: the default run's flags, and those kept where the suggestion
probabilities (the mean of the cross-fitted and the members' probabilities) do not favour the given label
(``&mix``); the ``count`` form: the ranking unchanged, cut at the number of the default's flags whose
probabilities favour another label; and the ``rerank`` form: the rows ``&mix`` would unflag ranked below
every other row and the top ``n`` (the default's count) flagged, with the AP of the ranking and of the
reranked one; and ``cl-count``: the ranking cut at the number of rows cleanlab's ``find_label_issues``
flags on the run's own cross-fitted probabilities (under a reliable model; else the default's count).

Digits28 through the public path (``InfluenceCleaner(label_column="label", random_state=seed)``, the
image featurizer and the default CNN), 800 images.

    python benchmarks/flag_restrictions_images.py --runs "digits28 uniform 20%:0" ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402
from detect_images import SETTINGS, fit_config_for, make_data  # noqa: E402
from flag_restrictions import forms, rule_stats  # noqa: E402

from influence_stage import InfluenceCleaner  # noqa: E402
from influence_stage.errors import ValidationFailedError  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def run(name: str, seed: int, rows: int) -> dict:
    kind, _, rate, noise = SETTINGS[name]
    data, _, flipped = make_data(kind, rows, rate, noise, seed)
    cleaner = InfluenceCleaner(label_column="label", random_state=seed, fit_config=fit_config_for(kind, -1))
    try:
        cleaner.fit(data)
    except ValidationFailedError:
        pass
    res = cleaner.result_
    y = np.asarray(data["label"])
    flags = cleaner.issues_["is_issue"].to_numpy().astype(bool)
    f = forms(cleaner.scores_, y, flipped, int(flags.sum()), res.oos_proba, res.member_proba,
              bool(res.auxiliary.reliable))
    rules = {"default": flags, **{k: f["rules"][k] for k in ("&mix", "count", "rerank", "cl-count")}}
    return {"setting": name, "seed": seed, "n_rows": rows, "reliable": bool(res.auxiliary.reliable), "ap": f["ap"],
            "rules": rule_stats(flipped, rules)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="SETTING:SEED")
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--out", default="flag_restrictions_images")
    args = parser.parse_args()
    runs = []
    for spec in args.runs:
        name, seed = spec.rsplit(":", 1)
        runs.append(run(name, int(seed), args.rows))
        print(json.dumps(runs[-1]), flush=True)
        (RESULTS / f"{args.out}.json").write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
