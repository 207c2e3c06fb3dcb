"""The ``discourse`` command: train, validate, evaluate, predict-pairs, score files, serve.

Exit status: 0 on success, 1 when the data or an artifact is unusable (the
message on stderr names the file), 2 for wrong usage; ``discourse score`` also
exits 3 when it finished but rejected some rows (see :mod:`service.file_scoring`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR, PROJECT_ROOT

DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "fnc-1"
DEFAULT_ARC_DIR = PROJECT_ROOT.parent / "shared" / "data" / "arc"


def _model_dir(name: str | None) -> Path:
    """``--model`` takes a name under ``models/`` or a path to an artifact directory."""
    if name is None:
        return DEFAULT_MODEL_DIR
    path = Path(name)
    return path if path.is_dir() or "/" in name else PROJECT_ROOT / "models" / name


def _positive_int(value: str) -> int:
    """An argparse type: an integer of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask (taskset, cpusets), not a CPU quota."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def _split_seeds(value: str) -> tuple[int, ...]:
    """An argparse type: comma-separated distinct non-negative integers."""
    try:
        seeds = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {value!r}") from None
    if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct and non-negative, not {value!r}")
    return seeds


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("discourse-compare")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discourse", description="Similarity and stance of texts towards reference articles."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train the stance model and write its artifact")
    train.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="FNC-1 training directory")
    train.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="artifact directory")
    train.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS_DIR, help="reference directory")
    train.add_argument("--model-id", default="fnc1-stance")
    train.add_argument("--version", default="5.0.0")
    jobs_help = "processes that fit models at once (default: the usable CPUs); results do not depend on it"
    train.add_argument("--jobs", type=_positive_int, default=_usable_cpus(), help=jobs_help)
    _add_arc_arguments(train)

    validate = commands.add_parser(
        "validate", help="train on the kept stories of story splits and report on the held-out ones"
    )
    validate.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="FNC-1 training directory")
    validate.add_argument(
        "--splits",
        type=_split_seeds,
        default=(5, 6, 7, 8, 9),
        help="comma-separated story split seeds (default 5-9: `discourse train` reports 0-4)",
    )
    validate.add_argument(
        "--stance-kind",
        help="stage-2 learner: trees, logistic, mlp or trees_and_mlps (default: that of `discourse train`)",
    )
    validate.add_argument("--out", type=Path, help="also write the report as JSON to this file")
    validate.add_argument("--jobs", type=_positive_int, default=_usable_cpus(), help=jobs_help)
    validate.add_argument(
        "--cross-domain-splits",
        type=_split_seeds,
        default=(5,),
        help="story split seeds on which a model trained on one domain alone is tested on every "
        "domain (default 5; only with ARC)",
    )
    validate.add_argument(
        "--json", action="store_true", help="print the report as JSON instead of the per-domain table"
    )
    _add_arc_arguments(validate)

    for name, help_text in (
        ("evaluate", "report FNC score, macro-F1 and the confusion matrix on labelled pairs"),
        ("predict-pairs", "write stance and similarity for every (headline, body) pair"),
    ):
        sub = commands.add_parser(name, help=help_text)
        evaluating = name == "evaluate"
        sub.add_argument("--stances", type=Path, required=not evaluating, help="FNC-format stance CSV")
        sub.add_argument("--bodies", type=Path, required=not evaluating, help="FNC-format bodies CSV")
        sub.add_argument("--model", help="model name under models/ or a directory")
        if evaluating:
            sub.add_argument(
                "--narrative",
                type=Path,
                help="instead of FNC pairs: a JSONL of labelled passages scored against a reference "
                "(tests/data/narrative/passages.jsonl)",
            )
            sub.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS_DIR, help="reference directory")
            sub.add_argument("--reference", help="reference id (default: the default reference)")
        else:
            sub.add_argument("--out", type=Path, required=True, help="CSV to write")

    score = commands.add_parser(
        "score",
        help="score JSONL, CSV or Parquet files of texts, write JSONL",
        description="Score every text of a file; rows that break a rule go to an errors file. "
        "Exit status: 0 all rows scored; 1 unusable input, model or reference, or --strict "
        "met a bad row (nothing written); 2 wrong usage (e.g. --out names an input); "
        "3 done, but some rows were rejected (see the errors file).",
    )
    score.add_argument(
        "file",
        help="JSONL (objects with 'text', optional 'id'), CSV (header row) or Parquet; '-' reads "
        "standard input (JSONL unless --format csv); with --workers/--scheduler also a glob or a folder",
    )
    score.add_argument("--out", type=Path, help="output JSONL (default: standard output)")
    score.add_argument(
        "--errors",
        type=Path,
        help="JSONL of rejected rows {line, field, reason, id} (default: OUT's name with .errors.jsonl; "
        "standard error when writing to standard output)",
    )
    score.add_argument("--strict", action="store_true", help="stop at the first rejected row, write nothing")
    score.add_argument(
        "--input-format",
        choices=["jsonl", "csv", "parquet"],
        help="format of the input file (default: by suffix; JSONL for standard input)",
    )
    score.add_argument(
        "--text-column", default="text", help="column (CSV, Parquet) or key (JSONL) of the text"
    )
    score.add_argument(
        "--id-column", help="column or key of the id (default: 'id' when present; a name given must exist)"
    )
    where = score.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_positive_int,
        help="score on a local Dask cluster of N worker processes (needs the dask extra); --out is a folder",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="score on a running Dask cluster, e.g. tcp://10.0.0.5:8786; --out is a folder that "
        "the workers can write to",
    )
    score.add_argument(
        "--partition-size",
        type=_positive_int,
        default=10_000,
        help="rows per partition (part file) with --workers or --scheduler (default 10000)",
    )
    score.add_argument("--reference", help="reference id (default: the default reference)")
    score.add_argument("--explain", action="store_true", help="add evidence to every result")
    score.add_argument(
        "--format",
        choices=("text", "html", "markdown"),
        default="text",
        help="how to read every text: plain text (default), HTML or Markdown",
    )
    score.add_argument("--batch-size", type=_positive_int, default=64)
    score.add_argument("--model", help="model name under models/ or a directory")
    score.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS_DIR)

    refs = commands.add_parser("references", help="check reference files, or derive claims for one")
    ref_commands = refs.add_subparsers(dest="references_command", required=True)
    check = ref_commands.add_parser(
        "check", help="check a reference file or a folder of them: one line per problem, exit 1 if any"
    )
    check.add_argument("path", type=Path, help="a reference file (TOML) or a folder of them")
    check.add_argument("--model", help="model name under models/ or a directory")
    claims = ref_commands.add_parser(
        "claims", help="print derived claims of a reference file as [[claims]] tables, to start from"
    )
    claims.add_argument("file", type=Path, help="a reference file (TOML)")
    claims.add_argument("--model", help="model name under models/ or a directory")

    serve = commands.add_parser("serve", help="run the development server (use gunicorn in production)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``discourse`` console script."""
    args = _parser().parse_args(argv)
    from service.domain.errors import DiscourseError
    from service.outputs import OutputError

    try:
        return _COMMANDS[args.command](args)
    except OutputError as error:
        print(f"discourse {args.command}: {error}", file=sys.stderr)
        return 2
    except DiscourseError as error:
        print(f"discourse {args.command}: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours, and nothing more to say.
        sys.stderr.close()
        return 0


def _add_arc_arguments(parser: argparse.ArgumentParser) -> None:
    arc = parser.add_mutually_exclusive_group()
    arc.add_argument(
        "--arc",
        type=Path,
        default=DEFAULT_ARC_DIR,
        help="ARC training directory (FNC format), trained on with FNC-1 (default: %(default)s)",
    )
    arc.add_argument("--no-arc", action="store_true", help="train on the --data corpus alone")


def _train(args: argparse.Namespace) -> int:
    from service.training.pipeline import train
    from service.training.trainer import TrainingConfig, log_to_stderr

    started = time.perf_counter()
    card = train(
        args.data,
        args.out,
        args.seeds,
        TrainingConfig(),
        args.model_id,
        args.version,
        log_to_stderr,
        jobs=args.jobs,
        arc_dir=None if args.no_arc else args.arc,
    )
    mean = card["validation"]["mean"]
    log_to_stderr(
        f"done in {time.perf_counter() - started:.1f} s; validation mean over "
        f"{len(card['validation']['splits'])} story splits: FNC score {mean['fnc_score']}, "
        f"macro-F1 {mean['macro_f1']}, similarity ROC-AUC {mean['similarity_roc_auc']}"
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    from service.training.model_card import validation_table
    from service.training.pipeline import validate
    from service.training.trainer import TrainingConfig, log_to_stderr

    config = TrainingConfig()
    if args.stance_kind is not None:
        try:
            config = dataclasses.replace(config, stance_kind=args.stance_kind)
        except ValueError as error:
            print(f"discourse validate: --stance-kind: {error}", file=sys.stderr)
            return 2
    started = time.perf_counter()
    report = validate(
        args.data,
        config,
        args.splits,
        log_to_stderr,
        jobs=args.jobs,
        arc_dir=None if args.no_arc else args.arc,
        cross_domain_seeds=args.cross_domain_splits,
    )
    log_to_stderr(f"done in {time.perf_counter() - started:.1f} s")
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text if args.json else "\n".join(validation_table(report)))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from service.loaders.artifacts import load_model
    from service.training.pipeline import evaluate

    if args.narrative is not None:
        from service.training.pipeline import evaluate_narrative

        if args.stances or args.bodies:
            print("discourse evaluate: --narrative goes without --stances and --bodies", file=sys.stderr)
            return 2
        report = evaluate_narrative(
            load_model(_model_dir(args.model)), args.seeds, args.narrative, args.reference
        )
    elif args.stances is None or args.bodies is None:
        print("discourse evaluate: give --stances and --bodies, or --narrative", file=sys.stderr)
        return 2
    else:
        report = evaluate(load_model(_model_dir(args.model)), args.stances, args.bodies)
    print(json.dumps(report, indent=2))
    return 0


def _predict_pairs(args: argparse.Namespace) -> int:
    from service.loaders.artifacts import load_model
    from service.training.pipeline import write_predictions

    rows = write_predictions(load_model(_model_dir(args.model)), args.stances, args.bodies, args.out)
    print(f"wrote {rows} rows to {args.out}", file=sys.stderr)
    return 0


def _score(args: argparse.Namespace) -> int:
    if args.workers or args.scheduler:
        from service.cluster import score_on_cluster

        return score_on_cluster(args, _model_dir(args.model))
    from service.file_scoring import score_file

    return score_file(args, _model_dir(args.model))


def _references(args: argparse.Namespace) -> int:
    from service.loaders.artifacts import load_model
    from service.reference_checks import check_references, derived_claims_toml

    encoder = load_model(_model_dir(args.model)).encoder
    if args.references_command == "claims":
        print(derived_claims_toml(args.file, encoder), end="")
        return 0
    problems = check_references(args.path, encoder)
    for line in problems:
        print(line)
    if not problems:
        print(f"{args.path}: ok", file=sys.stderr)
    return 1 if problems else 0


def _serve(args: argparse.Namespace) -> int:
    from service.http.app import create_app

    create_app().run(host=args.host, port=args.port)
    return 0


_COMMANDS = {
    "train": _train,
    "validate": _validate,
    "evaluate": _evaluate,
    "predict-pairs": _predict_pairs,
    "score": _score,
    "serve": _serve,
    "references": _references,
}


if __name__ == "__main__":
    sys.exit(main())
