"""SHA-256 digests of a default run's outputs, to show whether a change moved them.

Two small runs through the public path, each with its seed fixed:

- ``flat``: 600 sklearn digits rows (64 pixel columns), 15% uniform flips, ``InfluenceCleaner`` with every
  default (the MLP);
- ``image``: 300 generated 28×28 digits (``image_data.digits28``) in an ``Image`` column, 20% uniform flips,
  the default CNN with a short recipe (4 epochs, a 200-step floor, 2 chains × 2 cycles) so the run takes
  seconds.

For each: the digests of ``scores_``, ``gex_influence_``, the flags and the suggested labels. ``--package DIR``
imports ``influence_stage`` from ``DIR`` instead of the installed package (for example a ``git archive`` of
an earlier commit), so the code before and after a change runs on the same machine; ``--against NAME``
prints which digests equal those of an earlier result.

    git archive <rev> influence_stage | tar -x -C /tmp/before
    python benchmarks/output_digest.py --package /tmp/before --out output_digest_before
    python benchmarks/output_digest.py --out output_digest_after --against output_digest_before

Digests are comparable only between runs on the same kind of CPU with the same library versions (both
recorded in ``machine``): on another CPU the MLP's scores differ in the last bits and the image run's
CNN, trained for hundreds of steps, flags other rows; ``--against`` says so when the machines differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path


def _use_package(folder: str) -> None:
    """Import ``influence_stage`` from ``folder``: the editable install's finder would win over sys.path."""
    sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()
                     and "editable" not in repr(f).lower()]
    sys.path.insert(0, str(Path(folder).resolve()))


def digest(a) -> str:
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(np.asarray(a)).tobytes()).hexdigest()[:16]


def outputs(cleaner) -> dict[str, str]:
    import numpy as np

    issues = cleaner.issues_
    return {"scores": digest(cleaner.scores_), "gex_influence": digest(cleaner.gex_influence_),
            "flags": digest(issues["is_issue"].to_numpy()),
            "suggested_label": digest(issues["suggested_label"].fillna(-1).to_numpy(dtype=np.int64))}


def flat_run() -> dict[str, str]:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits

    from influence_stage import InfluenceCleaner
    from influence_stage.data.noise import flip_labels

    X, y = load_digits(return_X_y=True)
    y_noisy, _ = flip_labels(y[:600], 0.15, kind="uniform", n_classes=10, random_state=0)
    frame = pd.DataFrame(X[:600].astype(np.float32), columns=[f"p{i}" for i in range(64)]).assign(label=y_noisy)
    return outputs(InfluenceCleaner(label_column="label", random_state=0).fit(frame))


def image_run() -> dict[str, str]:
    from image_data import as_dataset, digits28

    from influence_stage import InfluenceCleaner
    from influence_stage.config import FitConfig, GEXConfig
    from influence_stage.data.noise import flip_labels

    images, y = digits28(300, seed=0)
    y_noisy, _ = flip_labels(y, 0.2, kind="uniform", n_classes=10, random_state=0)
    cleaner = InfluenceCleaner(label_column="label", random_state=0, fit_config=FitConfig(epochs=4, min_steps=200),
                               gex_config=GEXConfig(chains=2, cycles=2), max_drop_fraction=1.0)
    return outputs(cleaner.fit(as_dataset(images, y_noisy)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", default=None, help="a folder holding the influence_stage package to run")
    parser.add_argument("--out", default="output_digest")
    parser.add_argument("--against", default=None, help="an earlier result's name: say which digests are equal")
    args = parser.parse_args()
    if args.package:
        _use_package(args.package)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch

    torch.set_num_threads(1)
    import influence_stage
    from common import RESULTS, machine, write_json

    payload = {"machine": machine(), "package": str(Path(influence_stage.__file__).parent),
               "runs": {"flat": flat_run(), "image": image_run()}}
    write_json(args.out, payload)
    print(json.dumps(payload["runs"], indent=1))
    if args.against:
        earlier = json.loads((RESULTS / f"{args.against}.json").read_text())
        before = earlier["runs"]
        # digests compare code only on the same CPU kind and library versions: name what differs
        differ = [f"{k} {earlier['machine'].get(k, 'unrecorded')} → {v}" for k, v in payload["machine"].items()
                  if k not in ("torch_threads",) and earlier["machine"].get(k) != v]
        if differ:
            print(f"not comparable on code alone: {args.against} was written with other {'; '.join(differ)}")
        for run, got in payload["runs"].items():
            same = [k for k in got if before[run].get(k) == got[k]]
            print(f"{run}: {'identical' if len(same) == len(got) else 'changed'} "
                  f"({len(same)} of {len(got)} digests equal to {args.against})")


if __name__ == "__main__":
    main()
