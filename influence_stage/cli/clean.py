"""``influence-stage clean``: clean one dataset now and publish it; the flags every flow command shares."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from influence_stage.cli.common import EXAMPLES, EXIT_OK, registry_help


#: ``data.sources.DATA_SOURCE_REGISTRY``'s built-in entries (name, help), for ``--source``'s help without importing
#: ``datasets`` (``cli.common.RegistryNames``); a test keeps them equal to the registry's.
DATA_SOURCES: tuple[tuple[str, str], ...] = (
    ("dataset", "a datasets.Dataset, used as it is"),
    ("dataset-dict", "a datasets.DatasetDict: the split named by split=, or its only split"),
    ("dataframe", "a pandas.DataFrame (object columns of PIL images or numpy arrays allowed)"),
    ("arrays", "a tuple (X, y): X (n, d) numeric features or (n, h, w[, c]) images, y (n,) labels"),
    ("saved", "a folder written by Dataset.save_to_disk or DatasetDict.save_to_disk"),
    ("folder", "a folder of parquet / csv / json files of one format (train* / test* files form splits)"),
    ("file", "one local file, its format read off its suffix (.parquet, .pq, .csv, .tsv, .json, .jsonl, .ndjson; "
             "optionally compressed)"),
    ("hub", "a dataset on the Hugging Face Hub: 'hf:user/name', or 'user/name' when no local path has that name"),
)
#: ``data.featurize.FEATURIZER_REGISTRY``'s built-in entries, for ``--featurizer``'s help without importing torch.
FEATURIZERS: tuple[tuple[str, str], ...] = (("tabular", ""), ("image", ""), ("text", ""))


def issue_type_names() -> tuple[str, ...]:
    """The names of the issue types registered with ``decisions.issues.ISSUE_REGISTRY`` (for ``--issue-types``)."""
    import influence_stage.issues  # noqa: F401  (registers the data issue types)
    from influence_stage.decisions.issues import ISSUE_REGISTRY

    return tuple(ISSUE_REGISTRY.names())


def model_help() -> str:
    """The ``--model`` strings of ``engine.sources.MODEL_SOURCE_REGISTRY`` with their one-line help.

    Read from the classes' attributes only (a source's ``form`` may import torch, which ``--help`` must not).
    """
    from influence_stage.engine.sources import MODEL_SOURCE_REGISTRY

    strings = [f"{name if cls.builds or not cls.prefix else cls.prefix + 'PATH'} ({cls.help})"
               for name, cls in MODEL_SOURCE_REGISTRY.items() if cls.kind != "memory"]
    objects = [name for name, cls in MODEL_SOURCE_REGISTRY.items() if cls.kind == "memory"]
    # objects are the estimators' model=, not a string: named so that every entry is listed
    return "; ".join(strings) + (f" (from Python, model= also takes the sources {', '.join(objects)})" if objects else "")


def flow_args(p: argparse.ArgumentParser) -> None:
    """The flags of a cleaning run (``clean`` and ``serve``), in groups: the FlowConfig and CleanConfig fields.

    The choices and help of ``--action``, ``--score``, ``--threshold``, ``--model``,
    ``--issue-types``, ``--source`` and ``--featurizer`` are read from the registries
    (``decisions.policies``, ``engine.scores``, ``decisions.thresholds``, ``engine.sources``,
    ``decisions.issues``, ``data.sources``, ``data.featurize``), so a registered entry is named in
    ``--help`` at once (the last two when the help is printed: their modules import ``datasets``).
    """
    from influence_stage.decisions.policies import POLICY_REGISTRY, action_help
    from influence_stage.decisions.thresholds import threshold_help
    from influence_stage.engine.scores import score_help

    source = p.add_argument_group("source", "what is read (checked before anything starts)")
    source.add_argument("--config", help="YAML file with the flow parameters (FlowConfig), or 'demo' for the "
                        "demo's configuration shipped with the package; flags override it")
    registry_help(source.add_argument("--source", help="the data (a path or a hub id), read "
                                      "by the first data source of DATA_SOURCE_REGISTRY that claims it: %(names)s"),
                  "influence_stage.data.sources", "DATA_SOURCE_REGISTRY", DATA_SOURCES)
    source.add_argument("--split", help="split to read from a multi-split source (default: the only split)")
    source.add_argument("--label-column", help="label column (default: label)")
    source.add_argument("--feature-columns", nargs="+", help="feature columns or patterns ('px_*'); default: "
                        "automatic")
    source.add_argument("--normalize-labels", metavar="STEPS", help="merge string labels that differ only in "
                        "surrounding whitespace, case or Unicode form: a comma list of strip, casefold, nfc "
                        "(default: none; every such collision is refused, exit 2)")
    source.add_argument("--issue-types", nargs="*", metavar="TYPE", help="issue types found beside label "
                        f"issues, of {list(issue_type_names())}; no value: none (default: every data issue type up "
                        "to 10,000 rows, only exact_duplicate above)")
    source.add_argument("--coerce-numeric", action=argparse.BooleanOptionalAction, default=None, help="read the "
                        "cells of a column that is numeric but for a few (a '?') as missing values instead of "
                        "refusing the data: null issues, filled with the column's median for the model (default off)")
    source.add_argument("--truth", help="parquet with row_id, is_flipped (demo ground truth for the report)")
    model = p.add_argument_group("model", "θ* and the ensemble members")
    model.add_argument("--model", help=f"θ*, one of the model sources: {model_help()}; a checkpoint may also be "
                       "given by its file path (default: auto)")
    model.add_argument("--model-builder", choices=["mlp", "cnn"], help="architecture of a checkpoint whose "
                       "sidecar <file>.meta.json names none")
    model.add_argument("--fit-loaded", action=argparse.BooleanOptionalAction, default=None, help="train a loaded "
                       "model (checkpoint, hf:) with the fit recipe before scoring (default: use it as it is)")
    model.add_argument("--hf-trainable", metavar="WHICH", help="parameters of an hf: model that SGD moves: head "
                       "(default), all or last:N")
    registry_help(model.add_argument("--featurizer", metavar="NAME", help="a featurizer of FEATURIZER_REGISTRY "
                                     "instead of the default for the columns' kind (featurize.featurizer): "
                                     "%(names)s"), "influence_stage.data.featurize", "FEATURIZER_REGISTRY", FEATURIZERS)
    model.add_argument("--text-model", metavar="FOLDER", help="local sentence-transformers model folder that "
                       "featurizes text columns instead of TF-IDF + SVD (featurize.text_model)")
    model.add_argument("--ft-lr", help="fine-tuning rate of the members, or 'auto' (default)")
    model.add_argument("--device", choices=["cpu", "cuda", "auto"], help="where torch models train and evaluate "
                       "(default cpu; auto: CUDA when available; cuda without a GPU is an error)")
    scoring = p.add_argument_group("scoring", "how rows are ranked and how many are flagged")
    scoring.add_argument("--score", help=score_help())
    scoring.add_argument("--threshold", help=f"how rows are flagged: {threshold_help()}; default estimate")
    decisions = p.add_argument_group("decisions", "what happens to the flagged rows")
    decisions.add_argument("--action", choices=list(POLICY_REGISTRY.names()),
                           help=f"{action_help()}; default: the configuration's, drop")
    decisions.add_argument("--relabel-fallback", choices=["drop", "keep"], help="action relabel: what happens to "
                           "flagged rows that are not relabeled (default drop)")
    decisions.add_argument("--relabel-rule", choices=["argmax", "soft"], help="action relabel: which flagged "
                           "rows can be relabeled (default argmax)")
    decisions.add_argument("--min-agreement", type=float, metavar="P", help="action relabel: relabel only where "
                           "the suggested label's probability is at least P (default 0.5) and leads the given "
                           "label's by --relabel-margin (at least --weak-min-agreement when the cross-fitted model "
                           "is weak)")
    decisions.add_argument("--relabel-margin", type=float, metavar="M", help="action relabel: how far the suggested "
                           "label's probability must lead the given label's (default 0.3)")
    decisions.add_argument("--weak-min-agreement", type=float, metavar="P", help="action relabel: the least "
                           "probability of the suggested label when the cross-fitted model is weak (default 0.75)")
    decisions.add_argument("--reverse-flip-alpha", metavar="A", help="action relabel: under a reliable cross-fitted "
                           "model, no move g -> s where the run's flips s -> g are significantly more common at "
                           "level A (default 0.05; 'none': no veto)")
    decisions.add_argument("--min-weight", type=float, metavar="W", help="action reweight: lower clip of the "
                           "weights (default 0.05)")
    decisions.add_argument("--weight-column", metavar="NAME", help="action reweight: name of the added weight "
                           "column (default weight)")
    decisions.add_argument("--max-fraction-per-class", metavar="F", help="per-class cap: never remove more than "
                           "this share of a class (default 0.5; 'none' for no cap; one row per class always stays)")
    decisions.add_argument("--drop-cap", metavar="F", help="cap on the decisions: never drop more than this "
                           "share of all rows (the lowest-scoring drops are kept; default: no cap; 'none' for no "
                           "cap). Not the output gate --max-drop-fraction, which fails the run")
    decisions.add_argument("--prune-keep", help="action prune: rows to keep, a fraction in (0, 1] or an integer "
                           "count")
    decisions.add_argument("--prune-high-share", type=float, help="action prune: share of the pruned rows taken "
                           "from the highest self-influence (default 0: only the lowest, the redundant rows)")
    decisions.add_argument("--prune-per-class", action="store_true", default=None, help="action prune: each "
                           "class keeps its share of the budget")
    decisions.add_argument("--prune-tau", type=float, metavar="T", help="action prune: floor of the reference "
                           "loss of the self-influence the budget ranks by (default 0)")
    publishing = p.add_argument_group("publishing", "where and when a version is published")
    publishing.add_argument("--name", help="name of the published dataset")
    publishing.add_argument("--publish-root", help="root folder of published versions (default data/published)")
    publishing.add_argument("--max-drop-fraction", type=float, help="output gate: most input rows that may be "
                            "dropped")
    publishing.add_argument("--skip-unchanged", action=argparse.BooleanOptionalAction, default=None,
                            help="publish nothing when the data and configuration equal the latest version's "
                            "(default: off for clean, on for serve and deployments)")
    publishing.add_argument("--keep", type=int, metavar="N", help="retention: keep only the N newest published "
                            "versions (never the one LATEST points to)")
    publishing.add_argument("--push-to-hub", metavar="REPO", help="also push the published version to this hub "
                            "repo")
    run = p.add_argument_group("run", "seeds, cache, parallelism and notices")
    run.add_argument("--seed", type=int, help="one seed for every random choice of the run (θ*, members, "
                     "batches, text features, thresholds), derived by the rule of influence_stage.seeds: --seed N "
                     "gives the same scores as the estimators' random_state=N")
    run.add_argument("--cache-dir", help="cache of θ*, members and loss matrices (default runs/cache)")
    run.add_argument("--chains-per-task", type=int, help="chains trained together in one flow task (default: all "
                     "in one batched task; one per task on Dask or for models that train chains one at a time)")
    run.add_argument("--task-timeout-s", type=float, metavar="S", help="longest a single task may run, in "
                     "seconds; a task past it fails the run (default: no limit)")
    run.add_argument("--cache-expiration-days", metavar="D", help="how long a cached θ* or scale probe is reused "
                     "(default 30; 'none': never expire)")
    run.add_argument("--notify-webhook", metavar="URL", help="POST a JSON notice (run, dataset, reason) to this "
                     "URL when a run fails")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``clean`` to the CLI's subparsers."""
    clean = sub.add_parser("clean", help="clean one dataset now and publish it", epilog=EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    flow_args(clean)
    run = next(g for g in clean._action_groups if g.title == "run")
    run.add_argument("--progress", action="store_true", help="show progress: bars on a terminal, one plain line "
                     "per step when stderr is a file or pipe")
    run.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS",
                     help="run the chain and loss-shard tasks on Dask: a scheduler address (workers must read "
                     "--cache-dir), or no value for a local cluster")
    run.add_argument("--dask-workers", type=int, metavar="N", help="run the tasks on a local Dask cluster of N "
                     "worker processes (one thread each)")
    return clean


def normalization_steps(text: str) -> list[str]:
    """``--normalize-labels strip,casefold,nfc`` as a list; an error naming an unknown step.

    Raises
    ------
    InvalidInputError
        A step that is not one of ``data.spelling.LABEL_NORMALIZATIONS``.
    """
    from influence_stage.data.spelling import LABEL_NORMALIZATIONS
    from influence_stage.errors import InvalidInputError

    steps = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [step for step in steps if step not in LABEL_NORMALIZATIONS]
    if unknown:
        raise InvalidInputError(f"--normalize-labels must be a comma list of {', '.join(LABEL_NORMALIZATIONS)}; "
                                f"found {unknown!r}. Fix: e.g. --normalize-labels strip,casefold.")
    return steps


def demo_config() -> Path:
    """The demo's configuration as shipped in the package (``--config demo``; the same as flows/digits.yaml).

    Its paths are relative: run it from the project folder, where ``data/digits`` is.
    """
    from importlib import resources

    return Path(str(resources.files("influence_stage.orchestration").joinpath("demo.yaml")))


def number_or_none(value: str, flag: str, what: str) -> float | None:
    """A flag's number, or None for ``none``; anything else is a one-line error naming the flag."""
    from influence_stage.errors import InvalidInputError

    text = value.strip().lower()
    try:
        return None if text == "none" else float(text)
    except ValueError:
        raise InvalidInputError(f"{flag} must be {what} or 'none'; found {value!r}.") from None


def flow_config(args: argparse.Namespace) -> Any:
    """Build the FlowConfig from ``--config`` and the flags (flags win)."""
    from influence_stage.config import CleanConfig
    from influence_stage.errors import InvalidInputError
    from influence_stage.orchestration.flow import FlowConfig

    base: dict[str, Any] = {}
    if args.config:
        base = FlowConfig.from_yaml(demo_config() if args.config == "demo" else args.config).model_dump(mode="json")
    clean = dict(base.pop("clean", {}) or {})
    for flag, key in [("label_column", "label_column"), ("model", "model"), ("action", "action"),
                      ("threshold", "threshold"), ("split", "split"),
                      ("relabel_fallback", "relabel_fallback"), ("prune_high_share", "prune_high_share"),
                      ("coerce_numeric", "coerce_numeric"), ("model_builder", "model_builder"),
                      ("fit_loaded", "fit_loaded"), ("hf_trainable", "hf_trainable"), ("relabel_rule", "relabel_rule"),
                      ("min_agreement", "min_agreement"), ("min_weight", "min_weight"),
                      ("relabel_margin", "relabel_margin"), ("weak_min_agreement", "weak_min_agreement"),
                      ("weight_column", "weight_column"), ("prune_tau", "prune_tau")]:
        if getattr(args, flag, None) is not None:
            clean[key] = getattr(args, flag)
    if args.feature_columns:
        clean["feature_columns"] = list(args.feature_columns)
    if args.max_fraction_per_class is not None:
        clean["max_fraction_per_class"] = number_or_none(args.max_fraction_per_class, "--max-fraction-per-class",
                                                         "a number in [0, 1]")
    if getattr(args, "drop_cap", None) is not None:
        clean["drop_cap"] = number_or_none(args.drop_cap, "--drop-cap", "a number in [0, 1]")
    if getattr(args, "reverse_flip_alpha", None) is not None:
        clean["reverse_flip_alpha"] = number_or_none(args.reverse_flip_alpha, "--reverse-flip-alpha",
                                                     "a number in (0, 1)")
    if getattr(args, "normalize_labels", None) is not None:
        clean["normalize_labels"] = normalization_steps(args.normalize_labels)
    if getattr(args, "issue_types", None) is not None:
        clean["issue_types"] = list(args.issue_types)
    for flag in ("text_model", "featurizer"):
        if getattr(args, flag, None) is not None:
            clean["featurize"] = {**(clean.get("featurize") or {}), flag: getattr(args, flag)}
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
                 "chains_per_task", "skip_unchanged", "keep", "notify_webhook", "task_timeout_s"):
        if getattr(args, flag) is not None:
            base[flag] = getattr(args, flag)
    if getattr(args, "cache_expiration_days", None) is not None:
        base["cache_expiration_days"] = number_or_none(args.cache_expiration_days, "--cache-expiration-days",
                                                       "a positive number of days")
    for needed in ("source", "name"):
        if needed not in base:
            raise InvalidInputError(f"--{needed} is required (or give it in --config).")
    if getattr(args, "progress", False):
        base["progress"] = True
    try:
        config = CleanConfig.from_mapping(clean)
        if args.seed is not None:  # the one rule of influence_stage.seeds: --seed 0 is random_state=0
            from influence_stage.seeds import seeded_sections

            sections = seeded_sections({"gex": config.gex, "fit": config.fit, "featurize": config.featurize},
                                       args.seed)
            config = CleanConfig.from_mapping({**config.model_dump(mode="json"),
                                               **{k: (v.model_dump(mode="json") if hasattr(v, "model_dump") else v)
                                                  for k, v in sections.items()}})
        return FlowConfig(clean=config, **base)
    except InvalidInputError:
        raise
    except Exception as exc:  # pydantic's message names the field
        raise InvalidInputError(str(exc).replace("\n", " ")) from exc


def preflight(params: Any) -> None:
    """The checks of ``pipeline.preflight`` on a FlowConfig, before Prefect starts or anything is read in full."""
    from influence_stage.stage.steps import preflight as check

    check(params.source, params.clean, name=params.name, publish_root=params.publish_root,
          cache_dir=params.cache_dir, push_to_hub=params.push_to_hub)


def run(args: argparse.Namespace) -> int:
    """Run ``clean``: configuration, preflight, the flow (in process or on Dask); print the summary."""
    from influence_stage.orchestration.cache_folder import mark_cache_dir
    from influence_stage.cli.schema import check_args

    check_args(args)  # the source's schema, the name: before the configuration imports Prefect
    params = flow_config(args)
    preflight(params)
    mark_cache_dir(params.cache_dir)
    from influence_stage.orchestration.flow import clean_dataset

    if not getattr(args, "progress", False):
        # datasets' own bars (saving, mapping) would otherwise reach stderr, before an error's one line
        import datasets

        datasets.disable_progress_bars()
    if getattr(args, "script", False):
        from influence_stage.cli.console import keep_our_sigterm

        keep_our_sigterm()

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
    from influence_stage.cli.console import aggregate

    args.shown_warnings = list(summary.get("warnings") or ())  # on stdout here: not again on stderr
    for warning in aggregate(args.shown_warnings):
        print(f"warning:   {warning}")
    print(f"\npublished: {summary['published']}\nreport:    {summary['report']}")
    return EXIT_OK
