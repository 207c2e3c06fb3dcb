"""Stage-2 experiments on cached pair features of the story splits (issue 13, part 2).

``cache SEED...`` computes, for each story split, what every stage-2 experiment shares (the
split's encoder, augmentations, pair features with out-of-fold wording scores, and the held-out
pairs' features) exactly as :func:`service.training.pipeline.validate_on_split` does, and stores
them under ``--cache``. ``run SEED... --variant NAME`` refits both stages on each cached split with
the variant NAME and prints each domain's figures; the baseline reproduces ``discourse validate``.
The ``oracle_related*`` variants and ``narrative-oracle`` replace stage 1 with the true
related/unrelated labels, so what they report is how far stage 2 alone can go.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from service.cli import DEFAULT_ARC_DIR
from service.domain.pair_features import FEATURE_NAMES
from service.domain.stance import STANCE_LABELS, AveragedClassifier, as_label_indices
from service.domain.vectors import blend_cosines
from service.training.fnc import domain_of_body, story_split
from service.training.pipeline import (
    Predictions,
    _held_out_report,
    corpora_of,
    read_training_pairs,
)
from service.training.trainer import (
    WORDING_COLUMNS,
    TrainingConfig,
    _class_weights,
    _fit_mlp,
    _fit_trees,
    augment,
    fit_encoder,
    fit_stance_model,
    fit_wording_model,
    pair_feature_matrix,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"  # ../shared/data


def cache_split(seed: int, cache: Path) -> None:
    config = TrainingConfig()
    pairs, domains = read_training_pairs(corpora_of(DATA / "fnc-1", DEFAULT_ARC_DIR))
    train_rows, validation_rows = story_split(pairs, holdout=0.2, seed=seed, domains=domains)
    train, validation = pairs.subset(train_rows), pairs.subset(validation_rows)
    encoder = fit_encoder(train, config.encoder)
    train = augment(train, encoder, config)
    features = pair_feature_matrix(encoder, train)
    wording, out_of_fold = fit_wording_model(encoder, train, config)
    features[:, WORDING_COLUMNS] = out_of_fold
    val_features = pair_feature_matrix(encoder, validation, wording)
    np.savez_compressed(
        cache / f"split{seed}.npz",
        x_train=features,
        x_val=val_features,
    )
    meta = {
        "domains": domains,
        "train_labels": train.labels,
        "train_bodies": train.body_ids,
        "train_headlines": train.headlines,
        "val_labels": validation.labels,
        "val_bodies": validation.body_ids,
        "val_headlines": validation.headlines,
        "char_weight": encoder.config.char_weight,
    }
    (cache / f"split{seed}.json").write_text(json.dumps(meta), encoding="utf-8")


def load_split(seed: int, cache: Path) -> tuple[dict, dict]:
    arrays = dict(np.load(cache / f"split{seed}.npz"))
    meta = json.loads((cache / f"split{seed}.json").read_text(encoding="utf-8"))
    meta["train_domain"] = np.array([domain_of_body(b, meta["domains"]) for b in meta["train_bodies"]])
    meta["val_domain"] = np.array([domain_of_body(b, meta["domains"]) for b in meta["val_bodies"]])
    return arrays, meta


def stage2_weights(y: np.ndarray, domain: np.ndarray, variant: dict, config: TrainingConfig) -> np.ndarray:
    """Stage-2 sample weights of the related rows: the shipped ones or per corpus."""
    power = variant.get("power", config.class_weight_power)
    if not variant.get("per_corpus"):
        return _class_weights(y, power)
    weights = np.zeros(len(y))
    for name in np.unique(domain):
        rows = domain == name
        weights[rows] = _class_weights(y[rows], power)
    scale = variant.get("corpus_scale", {})
    for name, factor in scale.items():
        weights[domain == name] *= factor
    return weights


def fit_stage2(x, y, weights, config: TrainingConfig, kind: str):
    if kind == "trees":
        return _fit_trees(x, y, weights, config)
    networks = [_fit_mlp(x, y, weights, config, config.seed + i) for i in range(config.mlp_members)]
    w = (1.0 - config.trees_weight) / config.mlp_members
    return AveragedClassifier(
        (_fit_trees(x, y, weights, config), *networks),
        np.array([config.trees_weight] + [w] * config.mlp_members),
    )


VARIANTS: dict[str, dict] = {
    "base": {},
    "per_corpus": {"per_corpus": True},
    "per_corpus_p1": {"per_corpus": True, "power": 1.0},
    "per_corpus_p05": {"per_corpus": True, "power": 0.5},
    "per_corpus_arc05": {"per_corpus": True, "corpus_scale": {"arc": 0.5}},
    "per_corpus_arc2": {"per_corpus": True, "corpus_scale": {"arc": 2.0}},
    "per_corpus_fnc2": {"per_corpus": True, "corpus_scale": {"fnc-1": 2.0}},
    "oracle_genre": {"genre": "oracle"},
    "oracle_split": {"split_by_corpus": True},
    "per_corpus_oracle_genre": {"per_corpus": True, "genre": "oracle"},
    # Upper bounds of stage 2 alone: stage 1 replaced by the true related/unrelated label of
    # each held-out pair, so every error left is stage 2's (agree, disagree or discuss).
    "oracle_related": {"oracle_related": True},
    "oracle_related_arc_only": {"oracle_related": True, "train_corpus": "arc"},
}


def run_variant(name: str, seed: int, cache: Path, kind: str, threshold: float | None = None) -> dict:
    variant = VARIANTS[name]
    config = TrainingConfig()
    arrays, meta = load_split(seed, cache)
    x, x_val = arrays["x_train"], arrays["x_val"]
    y = as_label_indices(meta["train_labels"])
    dom, val_dom = meta["train_domain"], meta["val_domain"]
    if variant.get("genre") == "oracle":
        x = np.column_stack([x, (dom == "arc").astype(float)])
        x_val = np.column_stack([x_val, (val_dom == "arc").astype(float)])
    base = fit_stance_model(x, meta["train_labels"], dataclasses.replace(config, stance_kind="logistic"))
    unrelated = STANCE_LABELS.index("unrelated")
    related = y != unrelated
    if "train_corpus" in variant:  # stage 2 fitted on one corpus's pairs alone
        related &= dom == variant["train_corpus"]
    if variant.get("oracle_related"):
        p_related = (as_label_indices(meta["val_labels"]) != unrelated).astype(float)
    else:
        p_related = base.relatedness.predict_proba(x_val)[:, 1]
    if variant.get("split_by_corpus"):
        conditional = np.zeros((len(x_val), 3))
        for corpus in np.unique(dom):
            rows = related & (dom == corpus)
            model = fit_stage2(
                x[rows], y[rows], _class_weights(y[rows], config.class_weight_power), config, kind
            )
            conditional[val_dom == corpus] = model.predict_proba(x_val[val_dom == corpus])
    else:
        weights = stage2_weights(y[related], dom[related], variant, config)
        model = fit_stage2(x[related], y[related], weights, config, kind)
        conditional = model.predict_proba(x_val)
    probabilities = np.column_stack([p_related[:, None] * conditional, 1.0 - p_related])
    if threshold is not None:  # another related threshold than the shipped one
        base = dataclasses.replace(base, related_threshold=threshold)
    labels = [STANCE_LABELS[i] for i in base.decide(probabilities)]
    similarity = blend_cosines(
        x_val[:, FEATURE_NAMES.index("cos_word")],
        x_val[:, FEATURE_NAMES.index("cos_char")],
        meta["char_weight"],
    )
    result = {}
    for corpus in meta["domains"]:
        rows = np.flatnonzero(val_dom == corpus)
        part = Predictions([labels[i] for i in rows], probabilities[rows], similarity[rows])
        result[corpus] = _held_out_report([meta["val_labels"][i] for i in rows], part)
    return result


def narrative_oracle(model_dir: Path) -> str:
    """Stage 2's upper bound on the narrative development set: each passage scored by the model
    in ``model_dir`` as the service scores it, then its true related/unrelated label put in place
    of the passage's related decision (a related passage gets the largest of its agree/disagree/
    discuss probabilities; stage 1 still weighs the claims within it). Measured, never tuned on."""
    from service.config import DEFAULT_SEEDS_DIR
    from service.loaders.artifacts import load_model
    from service.training.fnc import evaluation_report
    from service.training.pipeline import NARRATIVE_SET, read_passages, seed_scorer

    model = load_model(model_dir)
    scorer = seed_scorer(model.encoder, model.stance, DEFAULT_SEEDS_DIR)
    passages = read_passages(NARRATIVE_SET)
    truth = [p["label"] for p in passages]
    results = scorer.score([p["text"] for p in passages])
    predicted = [
        "unrelated"
        if label == "unrelated" or result.stance is None
        else max(STANCE_LABELS[:3], key=result.stance.scores.__getitem__)
        for label, result in zip(truth, results, strict=True)
    ]
    report = evaluation_report(truth, predicted)
    per_class = " / ".join(f"{report['per_class'][k]['f1']:.3f}" for k in STANCE_LABELS[:3])
    return (
        f"narrative set, {model.model_id} {model.version}, true relatedness: macro-F1 "
        f"{report['macro_f1']:.4f}, F1 agree / disagree / discuss {per_class}"
    )


def summary(report: dict) -> str:
    return "  ".join(
        f"{c}: FNC {r['fnc_score']:.2f} mF1 {r['macro_f1']:.4f} "
        + " ".join(f"{k[:3]} {r['per_class'][k]['f1']:.3f}" for k in STANCE_LABELS)
        for c, r in report.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["cache", "run", "narrative-oracle"])
    parser.add_argument("seeds", type=int, nargs="*", help="story splits (cache, run)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "stage2-experiments",
        help="cached features of the splits",
    )
    parser.add_argument("--variant", action="append", default=[], choices=list(VARIANTS))
    parser.add_argument("--kind", choices=["trees", "trees_and_mlps"], default="trees")
    parser.add_argument("--threshold", type=float, help="related threshold (default: the shipped one)")
    parser.add_argument("--model", type=Path, help="narrative-oracle: model directory (default: shipped)")
    args = parser.parse_args()
    if args.command == "narrative-oracle":
        from service.config import DEFAULT_MODEL_DIR

        with threadpool_limits(limits=1):
            print(narrative_oracle(args.model or DEFAULT_MODEL_DIR))
        return
    if not args.seeds:
        parser.error(f"{args.command} needs at least one story split")
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.command == "cache":
        for seed in args.seeds:
            start = time.time()
            with threadpool_limits(limits=1):
                cache_split(seed, args.cache)
            print(f"split {seed} cached in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
        return
    for name in args.variant:
        reports = []
        for seed in args.seeds:
            with threadpool_limits(limits=1):
                report = run_variant(name, seed, args.cache, args.kind, args.threshold)
            reports.append(report)
            print(
                f"{name} [{args.kind}, threshold {args.threshold}] split {seed}: {summary(report)}",
                flush=True,
            )
        if len(reports) > 1:
            mean = {
                c: {
                    "fnc_score": float(np.mean([r[c]["fnc_score"] for r in reports])),
                    "macro_f1": float(np.mean([r[c]["macro_f1"] for r in reports])),
                    "per_class": {
                        k: {"f1": float(np.mean([r[c]["per_class"][k]["f1"] for r in reports]))}
                        for k in STANCE_LABELS
                    },
                }
                for c in reports[0]
            }
            print(
                f"{name} [{args.kind}, threshold {args.threshold}] mean {args.seeds}: {summary(mean)}",
                flush=True,
            )


if __name__ == "__main__":
    main()
