"""Command line: ``influence-stage clean | serve | server | report | versions``.

Exit codes: 0 published (or done); 2 bad input or configuration; 3 a validation gate failed
(nothing published); 1 anything else. Errors print one line, ``error: <reason>``, on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

EXAMPLES = """examples:
  influence-stage clean --config flows/digits.yaml
  influence-stage clean --source data/digits/train.parquet --label-column label \\
      --feature-columns 'px_*' --action relabel --name digits
  influence-stage clean --config flows/digits.yaml --score gex --threshold otsu
  influence-stage clean --source my_data.csv --label-column y --action reweight --threshold budget:0.05 --name mine
  influence-stage clean --config flows/digits.yaml --dask tcp://scheduler:8786
  influence-stage clean --config flows/digits.yaml --dask-workers 2 --device auto --progress
  influence-stage server start        # local Prefect server + work pool + worker + the prefect.yaml deployment
  influence-stage server stop
  PREFECT_API_URL=http://host:4200/api influence-stage server deploy --pool influence-stage
  influence-stage serve --config flows/digits.yaml --cron "0 3 * * *"   # needs PREFECT_API_URL
  influence-stage report data/published/digits/v0001
  influence-stage versions data/published/digits
"""

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_GATE = 0, 1, 2, 3


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("influence_stage")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _quiet(progress: bool) -> None:
    """Quiet by default: errors reach the user as one line, not as library log lines and bars."""
    import logging

    os.environ["PREFECT_LOGGING_LEVEL"] = "CRITICAL"  # task failures are reported by the CLI's own line
    for name in ("great_expectations", "datasets", "prefect"):
        logging.getLogger(name).setLevel(logging.CRITICAL if name == "prefect" else logging.WARNING)
    # this module sets its own logger to INFO when imported ("Created temporary directory ... docs site")
    import great_expectations.data_context.types.base  # noqa: F401

    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    if not progress:
        import datasets

        datasets.disable_progress_bars()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="influence-stage", description="Find mislabeled rows with GEX, clean them, validate, publish.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"influence-stage {_version()}")
    parser.add_argument("--verbose", action="store_true", help="show Prefect's, Great Expectations' and datasets' "
                        "own log lines (quiet by default)")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error before its one line")
    sub = parser.add_subparsers(dest="command", required=True)

    def flow_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="YAML file with the flow parameters (FlowConfig), or 'demo' for the demo's "
                       "configuration shipped with the package; flags override it")
        p.add_argument("--source", help="hub id, local parquet/csv/json file or folder, or save_to_disk folder")
        p.add_argument("--name", help="name of the published dataset")
        p.add_argument("--label-column", help="label column (default: label)")
        p.add_argument("--feature-columns", nargs="+", help="feature columns or patterns ('px_*'); default: automatic")
        p.add_argument("--model", help="auto, mlp, cnn, a checkpoint (.pt/.safetensors or checkpoint:PATH) or hf:FOLDER (default: auto)")
        p.add_argument("--action", choices=["drop", "relabel", "reweight", "none", "prune"])
        p.add_argument("--split", help="split to read from a multi-split source (default: the only split)")
        p.add_argument("--seed", type=int, help="seed of every random choice of the run (θ*, members, batches, "
                       "thresholds); the same seed gives the same scores")
        p.add_argument("--relabel-fallback", choices=["drop", "keep"], help="action relabel: what happens to "
                       "flagged rows that are not relabeled (default drop)")
        p.add_argument("--max-fraction-per-class", metavar="F", help="per-class cap: never remove more than this "
                       "share of a class (default 0.5; 'none' for no cap; one row per class always stays)")
        p.add_argument("--prune-keep", help="action prune: rows to keep, a fraction in (0, 1] or an integer count")
        p.add_argument("--prune-high-share", type=float, help="action prune: share of the pruned rows taken from "
                       "the highest self-influence (default 0: only the lowest, the redundant rows)")
        p.add_argument("--prune-per-class", action="store_true", default=None, help="action prune: each class "
                       "keeps its share of the budget")
        p.add_argument("--score", help="ranking: gex+oos+aum (default), gex+oos, gex, gex-trimmed or member-loss")
        p.add_argument("--threshold", help="estimate (default: the estimated number of mislabeled rows), otsu, gmm, "
                       "quantile:Q, budget:F or a number")
        p.add_argument("--ft-lr", help="fine-tuning rate of the members, or 'auto' (default)")
        p.add_argument("--max-drop-fraction", type=float, help="output gate: most input rows that may be dropped")
        p.add_argument("--publish-root", help="root folder of published versions (default data/published)")
        p.add_argument("--cache-dir", help="cache of θ*, members and loss matrices (default runs/cache)")
        p.add_argument("--truth", help="parquet with row_id, is_flipped (demo ground truth for the report)")
        p.add_argument("--push-to-hub", metavar="REPO", help="also push the published version to this hub repo")
        p.add_argument("--device", choices=["cpu", "cuda", "auto"], help="where torch models train and evaluate "
                       "(default cpu; auto: CUDA when available; cuda without a GPU is an error)")
        p.add_argument("--chains-per-task", type=int, help="chains trained together in one flow task (default: all "
                       "in one batched task; one per task on Dask or for models that train chains one at a time)")
        p.add_argument("--skip-unchanged", action=argparse.BooleanOptionalAction, default=None,
                       help="publish nothing when the data and configuration equal the latest version's (default: "
                       "off for clean, on for serve and deployments)")
        p.add_argument("--keep", type=int, metavar="N", help="retention: keep only the N newest published versions "
                       "(never the one LATEST points to)")
        p.add_argument("--notify-webhook", metavar="URL", help="POST a JSON notice (run, dataset, reason) to this URL "
                       "when a run fails")

    clean = sub.add_parser("clean", help="clean one dataset now and publish it", epilog=EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    flow_args(clean)
    clean.add_argument("--progress", action="store_true", help="show progress bars")
    clean.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS",
                       help="run the chain and loss-shard tasks on Dask: a scheduler address (workers must read "
                       "--cache-dir), or no value for a local cluster")
    clean.add_argument("--dask-workers", type=int, metavar="N", help="run the tasks on a local Dask cluster of N "
                       "worker processes (one thread each)")
    serve = sub.add_parser("serve", help="serve the flow on a cron schedule (needs a Prefect server)")
    flow_args(serve)
    serve.add_argument("--cron", required=True, help='cron schedule, e.g. "0 3 * * *"')
    serve.add_argument("--deployment-name", default=None, help="deployment name (default influence-stage-<name>)")
    from influence_stage.orchestration.server import add_arguments as server_arguments

    server = sub.add_parser("server", help="local Prefect server, work pool, worker and the prefect.yaml deployment "
                            "(start, stop), or deploy to the server PREFECT_API_URL names")
    server_arguments(server)
    report = sub.add_parser("report", help="rebuild the HTML report of a published version (the version "
                            "itself is never modified)")
    report.add_argument("path", help="published version folder, or <root>/<name> for its latest version")
    report.add_argument("--out", help="where to write the HTML (default: report-<name>-<version>.html here)")
    versions = sub.add_parser("versions", help="list the published versions of a dataset, and any debris of "
                              "killed publishes")
    versions.add_argument("path", help="<root>/<name>")
    # the curation flow's own parser is built when the command runs: Prefect is not imported for the others
    sub.add_parser("curate", add_help=False, help="curate a text corpus by self-influence under a budget, validate "
                   "and publish it (influence-stage curate --help)")
    cache = sub.add_parser("cache", help="the run cache (θ*, members, loss matrices)")
    cache.add_argument("cache_command", choices=["clear", "info"], help="clear: delete the cached results; info: "
                       "their count and size")
    cache.add_argument("--cache-dir", default="runs/cache", help="the cache folder (default runs/cache)")
    return parser


def demo_config() -> Path:
    """The demo's configuration as shipped in the package (``--config demo``; the same as flows/digits.yaml).

    Its paths are relative: run it from the project folder, where ``data/digits`` is.
    """
    from importlib import resources

    return Path(str(resources.files("influence_stage.orchestration").joinpath("demo.yaml")))


def flow_config(args: argparse.Namespace) -> Any:
    """Build the FlowConfig from ``--config`` and the flags (flags win)."""
    from influence_stage.orchestration.flow import FlowConfig
    from influence_stage.errors import InvalidInputError
    from influence_stage.stage.steps import CleanConfig

    base: dict[str, Any] = {}
    if args.config:
        base = FlowConfig.from_yaml(demo_config() if args.config == "demo" else args.config).model_dump(mode="json")
    clean = dict(base.pop("clean", {}) or {})
    for flag, key in [("label_column", "label_column"), ("model", "model"), ("action", "action"),
                      ("threshold", "threshold"), ("split", "split"), ("seed", "seed"),
                      ("relabel_fallback", "relabel_fallback"), ("prune_high_share", "prune_high_share")]:
        if getattr(args, flag) is not None:
            clean[key] = getattr(args, flag)
    if args.feature_columns:
        clean["feature_columns"] = list(args.feature_columns)
    if args.max_fraction_per_class is not None:
        text = args.max_fraction_per_class.strip().lower()
        try:
            clean["max_fraction_per_class"] = None if text == "none" else float(text)
        except ValueError:
            raise InvalidInputError(f"--max-fraction-per-class must be a number in [0, 1] or 'none'; found "
                                    f"{args.max_fraction_per_class!r}.") from None
    if args.prune_keep is not None:
        text = args.prune_keep.strip()
        try:
            clean["prune_keep"] = int(text) if text.isdigit() else float(text)
        except ValueError:
            raise InvalidInputError(f"--prune-keep must be a fraction in (0, 1] or a count; found "
                                    f"{args.prune_keep!r}.") from None
    if args.prune_per_class:
        clean["prune_per_class"] = True
    if args.ft_lr is not None:
        try:
            ft_lr: str | float = args.ft_lr if args.ft_lr == "auto" else float(args.ft_lr)
        except ValueError:
            raise InvalidInputError(f"--ft-lr must be 'auto' or a positive number; found {args.ft_lr!r}.") from None
        clean["gex"] = {**(clean.get("gex") or {}), "ft_lr": ft_lr}
    if getattr(args, "device", None) is not None:
        clean["gex"] = {**(clean.get("gex") or {}), "device": args.device}
    if getattr(args, "score", None) is not None:
        from influence_stage.engine.scores import check_score_name

        clean["gex"] = {**(clean.get("gex") or {}), "score": check_score_name(args.score)}
    for flag in ("source", "name", "publish_root", "cache_dir", "truth", "max_drop_fraction", "push_to_hub",
                 "chains_per_task", "skip_unchanged", "keep", "notify_webhook"):
        if getattr(args, flag) is not None:
            base[flag] = getattr(args, flag)
    for needed in ("source", "name"):
        if needed not in base:
            raise InvalidInputError(f"--{needed} is required (or give it in --config).")
    if getattr(args, "progress", False):
        base["progress"] = True
    try:
        return FlowConfig(clean=CleanConfig.from_mapping(clean), **base)
    except InvalidInputError:
        raise
    except Exception as exc:  # pydantic's message names the field
        raise InvalidInputError(str(exc).replace("\n", " ")) from exc


def preflight(params: Any) -> None:
    """The checks of ``pipeline.preflight`` on a FlowConfig, before Prefect starts or anything is read in full."""
    from influence_stage.stage.steps import preflight as check

    check(params.source, params.clean, name=params.name, publish_root=params.publish_root,
          cache_dir=params.cache_dir, push_to_hub=params.push_to_hub)


def check_cron(cron: str) -> str:
    """``cron`` parses as a cron schedule (Prefect's own parser)."""
    from prefect.client.schemas.schedules import CronSchedule

    from influence_stage.errors import InvalidInputError

    try:
        CronSchedule(cron=cron)
    except Exception as exc:
        raise InvalidInputError(
            f"--cron {cron!r} is not a valid cron schedule; expected five fields 'minute hour day month weekday', "
            'e.g. "0 3 * * *" (03:00 every day).'
        ) from exc
    return cron


def _clean(args: argparse.Namespace) -> int:
    params = flow_config(args)
    preflight(params)
    from influence_stage.orchestration.flow import clean_dataset

    if args.dask or args.dask_workers is not None:
        from influence_stage.errors import InvalidInputError
        from influence_stage.orchestration.dask_runner import clean_on_dask

        address = None if args.dask in (None, "local") else args.dask
        if address is not None and args.dask_workers is not None:
            raise InvalidInputError(f"--dask {address} names an existing cluster and --dask-workers "
                                    f"{args.dask_workers} asks for a local one. Fix: give one of them.")
        workers = 2 if args.dask_workers is None else args.dask_workers
        summary = clean_on_dask(params, address=address, n_workers=workers)
    else:
        summary = clean_dataset(params)
    if summary.get("unchanged"):
        print(f"{summary['markdown']}\nlatest:    {summary['published']}")
        return EXIT_OK
    print(summary["markdown"])
    roles = summary.get("columns") or {}
    if roles:
        feats = list(roles.get("features") or [])
        shown = feats if len(feats) <= 6 else feats[:3] + ["…"] + feats[-2:]
        print(f"\ncolumns:   label {roles.get('label')!r}, {roles.get('kind')} features ({len(feats)}): "
              f"{', '.join(map(str, shown))}")
    for warning in summary.get("warnings") or ():
        print(f"warning:   {warning}")
    print(f"\npublished: {summary['published']}\nreport:    {summary['report']}")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from influence_stage.orchestration.deployments import require_server

    params = flow_config(args)  # a bad configuration or cron is named first
    check_cron(args.cron)
    require_server()  # then at once: on Prefect's temporary server the schedule would never fire
    preflight(params)
    from influence_stage.orchestration.deployments import serve

    serve(params, cron=args.cron, name=args.deployment_name)
    return EXIT_OK


def _server(args: argparse.Namespace) -> int:
    from influence_stage.orchestration.server import run

    return run(args)


def _report(args: argparse.Namespace) -> int:
    from influence_stage.errors import InvalidInputError
    from influence_stage.publish.versions import load_published, manifest_codes
    from influence_stage.report import build_report, write_report

    if args.out:  # published versions are read-only to every command; the default name is checked below
        _refuse_inside_version(Path(args.out), InvalidInputError)
    ds, manifest, meta = load_published(args.path)
    manifest = manifest_codes(manifest, meta)  # the report draws class codes; meta.json maps them to labels
    version = Path(args.path)
    if not (version / "meta.json").is_file():  # <root>/<name>: its latest version
        version = version / str(meta.get("version"))
    config = json.loads((version / "config.json").read_text()) if (version / "config.json").is_file() else {}
    label = (config.get("clean") or {}).get("label_column", "label")
    feature = ds.features.get(label)
    k = int(max(manifest["given_label"].max(), manifest["suggested_label"].max())) + 1
    if meta.get("class_names") is not None:
        names = [str(n) for n in meta["class_names"]]
    else:
        names = list(feature.names) if hasattr(feature, "names") else [str(i) for i in range(k)]
    run_summary = dict(meta.get("summary") or {})  # what the run recorded: threshold, rate, members, score
    threshold = float(run_summary.get("threshold", manifest.loc[manifest["is_issue"], "score"].min()
                                      if manifest["is_issue"].any() else manifest["score"].max()))
    html = build_report(manifest, class_names=names, threshold=threshold,
                        summary={**run_summary, "version": meta.get("version")},
                        title=f"influence_stage: {meta.get('name', version.parent.name)}",
                        score_name=run_summary.get("score") or ((config.get("clean") or {}).get("gex") or {}).get("score"))
    out = Path(args.out) if args.out else Path(f"report-{meta.get('name', version.parent.name)}-{version.name}.html")
    _refuse_inside_version(out, InvalidInputError)
    print(write_report(out, html))
    return EXIT_OK


def _curate(args: argparse.Namespace) -> int:
    from influence_stage.orchestration.curate import add_curate_parser, run_curate

    parser = argparse.ArgumentParser(prog="influence-stage")
    add_curate_parser(parser.add_subparsers(dest="command", required=True))
    return run_curate(parser.parse_args(["curate", *args.rest]))


def _cache(args: argparse.Namespace) -> int:
    """``cache clear`` deletes the cached results under ``--cache-dir``; ``cache info`` counts them."""
    import shutil

    from influence_stage.errors import InvalidInputError

    folder = Path(args.cache_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"--cache-dir {folder} is a file, not a folder.")
    files = [f for f in folder.rglob("*") if f.is_file()] if folder.is_dir() else []
    size = sum(f.stat().st_size for f in files)
    if args.cache_command == "info":
        print(f"{folder}: {len(files)} cached files, {size / 2**20:.1f} MiB")
        return EXIT_OK
    if folder.is_dir():
        shutil.rmtree(folder)
    print(f"cleared {folder}: {len(files)} files, {size / 2**20:.1f} MiB")
    return EXIT_OK


def _versions(args: argparse.Namespace) -> int:
    from influence_stage.errors import InvalidInputError
    from influence_stage.publish.versions import latest_version, list_debris, list_versions

    base = Path(args.path)
    if not base.is_dir():
        raise InvalidInputError(f"{base} is not a folder; expected <root>/<name> of a published dataset.")
    found = list_versions(base.parent, base.name)
    latest = latest_version(base.parent, base.name) if found else None
    for v in found:
        print(f"{v} (LATEST)" if v == latest else v)
    debris = list_debris(base.parent, base.name)
    if debris:
        print(f"debris: {', '.join(p.name for p in debris)} (left by killed publishes; removed by the next publish)")
    return EXIT_OK


def _refuse_inside_version(out: Path, error: type[Exception]) -> None:
    from influence_stage.publish.versions import version_containing

    inside = version_containing(out)
    if inside is not None:
        raise error(
            f"the report path {out} is inside the published version {inside}; published versions are read-only "
            "(meta.json holds the checksum of every file). Fix: pass --out with a path outside it, e.g. "
            "--out report.html in another folder."
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``influence-stage``; returns the exit code."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "curate":
        args.rest = rest  # the curation command parses its own arguments (see _curate)
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from influence_stage.errors import InfluenceStageError, ValidationFailedError

    if argv is None and not args.verbose:  # the console script; calls from Python keep their own logging
        _quiet(getattr(args, "progress", False))

    if argv is None and args.command in ("clean", "serve", "curate"):
        # the console script (not a call from Python): a killed CLI must not leave Prefect's server behind
        from influence_stage.orchestration.orphans import start_watchdog

        start_watchdog()

    try:
        return {"clean": _clean, "serve": _serve, "server": _server, "report": _report,
                "versions": _versions, "curate": _curate, "cache": _cache}[args.command](args)
    except ValidationFailedError as exc:
        _traceback(args)
        print(f"error: validation failed, nothing published: {_one_line(exc)}", file=sys.stderr)
        return EXIT_GATE
    except (InfluenceStageError, FileNotFoundError) as exc:
        _traceback(args)
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # the one-line contract holds for surprises too
        _traceback(args)
        print(f"error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _traceback(args: argparse.Namespace) -> None:
    if args.debug:
        import traceback

        traceback.print_exc()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
