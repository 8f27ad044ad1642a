"""One ``curate`` command in its own process, its summary (with the per-step timings) saved as JSON.

``python benchmarks/curation_scale_run.py SUMMARY.json -- <curate flags>`` parses the flags with the
command's own parser (``add_curate_parser``) and does what ``influence-stage curate`` does
(``run_curate``: config, preflight, the flow in process or on Dask); the only difference is that the
summary, timings included, is written to ``SUMMARY.json`` instead of printed as a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    out, flags = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    from influence_stage.orchestration.curate import (add_curate_parser, curate_config, curate_corpus,
                                                      curate_on_dask, preflight)

    top = argparse.ArgumentParser()
    args = top.parse_args(["curate", *flags]) if add_curate_parser(top.add_subparsers()) else None
    t0 = time.perf_counter()
    config = curate_config(args)
    preflight(config)
    if args.dask or args.dask_workers is not None:
        address = None if args.dask in (None, "local") else args.dask
        summary = curate_on_dask(config, address=address, n_workers=2 if args.dask_workers is None
                                 else args.dask_workers)
    else:
        summary = curate_corpus(config)
    summary = {k: v for k, v in summary.items() if k != "markdown"}
    summary["wall_seconds_in_process"] = time.perf_counter() - t0
    with open(out, "w") as f:
        json.dump(summary, f, default=str, indent=1)


if __name__ == "__main__":
    main()
