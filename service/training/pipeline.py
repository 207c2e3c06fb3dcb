"""The ``train``, ``evaluate`` and ``predict-pairs`` workflows behind the command line."""

from __future__ import annotations

import csv
import json
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, cast

import numpy as np
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from service import __version__
from service.domain.encoding import TextEncoder
from service.domain.pair_features import FEATURE_NAMES
from service.domain.references import prepare_reference
from service.domain.scorer import Scorer
from service.domain.stance import STANCE_LABELS, StanceModel
from service.domain.vectors import blend_cosines
from service.loaders.artifacts import (
    ARRAYS_FILE,
    CARD_FILE,
    CARD_MARKDOWN_FILE,
    ENCODER_FILE,
    FORMAT_VERSION,
    LoadedModel,
    encoder_document,
    library_versions,
    model_arrays,
    sha256_of,
    write_arrays,
    write_json,
)
from service.loaders.reference_files import load_reference_directory
from service.training.fnc import (
    ARC_DOMAIN,
    PRIMARY_DOMAIN,
    DataFormatError,
    PairSet,
    domain_of_body,
    evaluation_report,
    join_domains,
    read_pairs,
    story_split,
)
from service.training.model_card import render_model_card
from service.training.process_pool import run_tasks
from service.training.trainer import (
    RELATEDNESS_FEATURES,
    Progress,
    TrainingConfig,
    augment,
    fit_encoder,
    fit_model,
    pair_feature_matrix,
)

STANCES_FILE = "train_stances.csv"
BODIES_FILE = "train_bodies.csv"
VALIDATION_SEEDS = (0, 1, 2, 3, 4)
"""Story splits evaluated (see the protocol in the model card for how settings were chosen)."""
CROSS_DOMAIN_SEEDS = (0,)
"""Story splits on which a model trained on one domain alone is tested on every domain: fewer
than :data:`VALIDATION_SEEDS` so that training stays within its time budget."""

NARRATIVE_SET = Path(__file__).resolve().parents[2] / "tests" / "data" / "narrative" / "passages.jsonl"
"""The narrative development set: measured with every trained model, never trained on."""

CORPUS_FACTS: dict[str, dict[str, str]] = {
    PRIMARY_DOMAIN: {
        "name": "FNC-1 training split (Fake News Challenge stage 1): news headlines and articles",
        "provenance": (
            "FNC-1, fakenewschallenge.org, built from the Emergent data set "
            "(Ferreira and Vlachos, 'Emergent: a novel data-set for stance classification', "
            "NAACL-HLT 2016)"
        ),
        "licence": (
            "as published in the FakeNewsChallenge/fnc-1 repository (see its README and the Emergent "
            "data set's terms); the project ships the trained artifact, never the data"
        ),
        "held_out": "the FNC-1 competition test set was never used for training, tuning or selection",
    },
    ARC_DOMAIN: {
        "name": (
            "ARC stance corpus (development part): debate claims and readers' comments from New York "
            "Times 'Room for Debate'"
        ),
        "provenance": (
            "Hanselowski, Pvs, Schiller, Caspelherr, Chaudhuri, Meyer and Gurevych, 'A Retrospective "
            "Analysis of the Fake News Challenge Stance-Detection Task', COLING 2018; comments collected "
            "by Habernal et al. for the Argument Reasoning Comprehension Task; files from the "
            "UKPLab/coling2018_fake-news-challenge repository, data/fnc-1/corpora/ARC/"
        ),
        "licence": (
            "the UKPLab repository is Apache-2.0; the comments belong to their authors; the project "
            "ships the trained artifact, never the data"
        ),
        "held_out": (
            "the claims of the original corpus that are not in this part (and every comment related "
            "to them) were never seen"
        ),
    },
}
"""What the model card says of each corpus a model can be trained on."""


@dataclass(frozen=True)
class Predictions:
    """Model output for FNC-format pairs, in input order."""

    labels: list[str]
    probabilities: np.ndarray  # (n, 4) in STANCE_LABELS order
    similarity: np.ndarray  # (n,)


def predict_pairs(encoder: TextEncoder, model: StanceModel, pairs: PairSet) -> Predictions:
    """Stance and similarity of every (headline, body) pair."""
    features = pair_feature_matrix(encoder, pairs, model.wording, latent=model.latent)
    probabilities = model.predict_proba(features)
    similarity = blend_cosines(
        features[:, FEATURE_NAMES.index("cos_word")],
        features[:, FEATURE_NAMES.index("cos_char")],
        encoder.config.char_weight,
    )
    labels = [STANCE_LABELS[i] for i in model.decide(probabilities)]
    return Predictions(labels, probabilities, similarity)


def read_training_pairs(corpora: Sequence[tuple[str, Path]]) -> tuple[PairSet, list[str]]:
    """Read and join the FNC-format corpora ``(domain, directory)``; return the pairs and domains.

    Raises :class:`DataFormatError` naming the file and row of a malformed file.
    """
    parts = [
        (name, read_pairs(d / STANCES_FILE, d / BODIES_FILE, require_labels=True)) for name, d in corpora
    ]
    return join_domains(parts), [name for name, _ in corpora]


def validate_on_split(
    pairs: PairSet,
    config: TrainingConfig,
    seed: int,
    domains: Sequence[str] = (PRIMARY_DOMAIN,),
    train_domain: str | None = None,
) -> dict:
    """Train on the kept stories of one split and report on its held-out stories.

    The held-out stories are drawn from each domain apart; with ``train_domain`` only
    that domain's kept pairs are trained on (the cross-domain figures), while every
    domain's held-out pairs are still reported. With several ``domains`` the report
    has each domain's figures under ``"domains"`` beside those of all held-out pairs.

    Uses as many threads as the numerical libraries are allowed: :func:`validate`
    and :func:`train` run it with one (see :mod:`service.training.process_pool`).
    """
    train_rows, validation_rows = story_split(pairs, holdout=0.2, seed=seed, domains=domains)
    if train_domain is not None:
        train_rows = [r for r in train_rows if domain_of_body(pairs.body_ids[r], domains) == train_domain]
    train, validation = pairs.subset(train_rows), pairs.subset(validation_rows)
    encoder = fit_encoder(train, config.encoder)
    train = augment(train, encoder, config)
    model = fit_model(encoder, train, config)
    predictions = predict_pairs(encoder, model, validation)
    report = _held_out_report(validation.labels, predictions)
    if len(domains) > 1:
        row_domain = [domain_of_body(b, domains) for b in validation.body_ids]
        report["domains"] = {}
        for name in domains:
            rows = [i for i, d in enumerate(row_domain) if d == name]
            if rows:
                part = Predictions(
                    [predictions.labels[i] for i in rows],
                    predictions.probabilities[rows],
                    predictions.similarity[rows],
                )
                report["domains"][name] = _held_out_report([validation.labels[i] for i in rows], part)
    if train_domain is not None:
        report["train_domain"] = train_domain
    report["split_seed"] = seed
    report["train_pairs"] = len(train)
    report["validation_pairs"] = len(validation)
    return report


def _held_out_report(truth: list[str], predictions: Predictions) -> dict:
    related = np.array([s != "unrelated" for s in truth])
    report = evaluation_report(truth, predictions.labels)
    both = 0 < related.sum() < len(related)
    report["similarity_roc_auc"] = (
        round(float(roc_auc_score(related, predictions.similarity)), 4) if both else None
    )
    report["related_roc_auc"] = (
        round(float(roc_auc_score(related, 1.0 - predictions.probabilities[:, 3])), 4) if both else None
    )
    return report


def _report_split(report: dict, progress: Progress) -> None:
    trained_on = f" trained on {report['train_domain']} only" if "train_domain" in report else ""
    parts = [
        f"{name + ': ' if name else ''}FNC score {r['fnc_score']}, macro-F1 {r['macro_f1']}, "
        f"disagree F1 {r['per_class']['disagree']['f1']}, similarity ROC-AUC {r['similarity_roc_auc']}"
        for name, r in report.get("domains", {"": report}).items()
    ]
    progress(f"split {report['split_seed']}{trained_on}: " + "; ".join(parts))


def fit_final_model(pairs: PairSet, config: TrainingConfig) -> tuple[TextEncoder, StanceModel]:
    """The encoder and stance model fitted on every pair (and their augmentations)."""
    encoder = fit_encoder(pairs, config.encoder)
    return encoder, fit_model(encoder, augment(pairs, encoder, config), config)


def _validation_tasks(
    pairs: PairSet,
    config: TrainingConfig,
    domains: Sequence[str],
    seeds: Sequence[int],
    cross_domain_seeds: Sequence[int],
) -> list[Callable[[], dict]]:
    tasks: list[Callable[[], dict]] = [
        partial(validate_on_split, pairs, config, seed, tuple(domains)) for seed in seeds
    ]
    if len(domains) > 1:
        tasks += [
            partial(validate_on_split, pairs, config, seed, tuple(domains), name)
            for seed in cross_domain_seeds
            for name in domains
        ]
    return tasks


def _validation_section(reports: list[dict], n_joint: int) -> dict:
    splits, cross = reports[:n_joint], reports[n_joint:]
    section = {"splits": splits, "mean": _mean_report(splits)}
    if cross:
        section["cross_domain"] = cross
    return section


def corpora_of(data_dir: Path, arc_dir: Path | None) -> list[tuple[str, Path]]:
    """The ``(domain, directory)`` list that :func:`train` and :func:`validate` read."""
    return [(PRIMARY_DOMAIN, data_dir)] + ([(ARC_DOMAIN, arc_dir)] if arc_dir is not None else [])


def validate(
    data_dir: Path,
    config: TrainingConfig,
    seeds: Sequence[int],
    progress: Progress | None = None,
    jobs: int = 1,
    arc_dir: Path | None = None,
    cross_domain_seeds: Sequence[int] = (),
) -> dict:
    """Validate ``config`` on the story splits ``seeds`` of the FNC-format data in ``data_dir``
    (joined with ARC's in ``arc_dir`` when given).

    The same protocol as :func:`train`'s validation, without writing a model:
    splits other than :data:`VALIDATION_SEEDS` check a choice made on those. With
    ARC, each domain is reported apart, and on ``cross_domain_seeds`` a model trained
    on each domain alone is tested on every domain.
    ``jobs`` processes validate splits at once; the report does not depend on it.
    """
    pairs, domains = read_training_pairs(corpora_of(data_dir, arc_dir))

    def on_done(_index: int, report: dict) -> None:
        if progress:
            _report_split(report, progress)

    tasks = _validation_tasks(pairs, config, domains, seeds, cross_domain_seeds)
    reports = run_tasks(tasks, jobs, on_done)
    return {"training": config.to_dict(), "domains": domains, **_validation_section(reports, len(seeds))}


def load_protocol() -> str:
    """The validation protocol and experiment history for the model card, from
    ``validation_protocol.txt`` beside this module (comment lines dropped, lines joined with spaces)."""
    text = resources.files("service.training").joinpath("validation_protocol.txt").read_text(encoding="utf-8")
    return " ".join(line for line in text.splitlines() if line and not line.startswith("#"))


def load_probes() -> list[dict]:
    """The hand-written probe texts shipped with the training code."""
    text = resources.files("service.training").joinpath("probes.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)["probes"]


def run_probes(encoder: TextEncoder, model: StanceModel, seeds_dir: Path) -> dict:
    """Score the probe texts against the default reference; report each outcome."""
    references, default_id = load_reference_directory(seeds_dir)
    prepared = {r.id: prepare_reference(r, encoder) for r in references}
    scorer = Scorer(encoder, model, prepared, default_id)
    probes = load_probes()
    results = scorer.score([p["text"] for p in probes], ids=[p["id"] for p in probes])
    rows = []
    for probe, result in zip(probes, results, strict=True):
        rows.append(
            {
                "id": probe["id"],
                "expected": probe["expected"],
                # A probe in another language than the reference gets no stance.
                "label": result.stance.label if result.stance is not None else None,
                "related": result.related,
                "similarity": result.similarity,
                "scores": result.stance.scores if result.stance is not None else None,
            }
        )
    matches = sum(r["expected"] == r["label"] for r in rows)
    related_right = sum((r["expected"] == "unrelated") == (r["label"] == "unrelated") for r in rows)
    return {
        "reference": default_id,
        "texts": len(rows),
        "label_matches": matches,
        "related_vs_unrelated_matches": related_right,
        "results": rows,
    }


def train(
    data_dir: Path,
    out_dir: Path,
    seeds_dir: Path,
    config: TrainingConfig,
    model_id: str,
    version: str,
    progress: Progress,
    jobs: int = 1,
    arc_dir: Path | None = None,
) -> dict:
    """Validate on story splits, fit on all pairs, and write the artifact and its card.

    ``data_dir`` holds FNC-1's files; ``arc_dir``, when given, ARC's, trained on jointly.

    ``jobs`` processes fit the final model and the validation splits at once; the
    artifact does not depend on it.
    """
    corpora = corpora_of(data_dir, arc_dir)
    pairs, domains = read_training_pairs(corpora)
    progress(
        f"read {len(pairs)} pairs and {len(pairs.bodies)} bodies from "
        + ", ".join(str(directory) for _, directory in corpora)
    )

    def on_done(index: int, result: tuple[TextEncoder, StanceModel] | dict) -> None:
        if index == 0:
            progress("final model fitted on all training pairs")
        else:
            assert isinstance(result, dict)  # every task after the first is a validation report
            _report_split(result, progress)

    # The final model first: it is the largest task, so it should not start last.
    tasks: list[Callable[[], tuple[TextEncoder, StanceModel] | dict]] = [
        partial(fit_final_model, pairs, config)
    ]
    tasks += _validation_tasks(pairs, config, domains, VALIDATION_SEEDS, CROSS_DOMAIN_SEEDS)
    workers = min(jobs, len(tasks))
    progress(
        f"fitting the final model and validating on {len(VALIDATION_SEEDS)} story splits "
        + (f"(and {len(tasks) - 1 - len(VALIDATION_SEEDS)} cross-domain fits) " if len(domains) > 1 else "")
        + (f"in {workers} processes" if workers > 1 else "in this process")
        + " (the final model's progress shows when it is done)"
    )
    (encoder, model), *validations = run_tasks(tasks, jobs, on_done)
    # Every task after the final model's returns a validation report (see _validation_tasks).
    validation_section = _validation_section(cast(list[dict], validations), len(VALIDATION_SEEDS))
    with threadpool_limits(limits=1):  # like every other fit here, so the card does not vary
        probes = run_probes(encoder, model, seeds_dir)
    progress(f"probes: {probes['label_matches']}/{probes['texts']} labels as a reader expects")
    narrative = None
    if NARRATIVE_SET.is_file():
        with threadpool_limits(limits=1):
            narrative = narrative_report(encoder, model, seeds_dir, NARRATIVE_SET)
        progress(
            f"narrative set: macro-F1 {narrative['macro_f1']}, "
            f"related accuracy {narrative['related_accuracy']}"
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / ENCODER_FILE, encoder_document(encoder), indent=None)
    write_arrays(out_dir / ARRAYS_FILE, model_arrays(encoder, model))
    card = {
        "id": model_id,
        "version": version,
        "format_version": FORMAT_VERSION,
        "trained_by": f"discourse-compare {__version__}: discourse train",
        "task": "stance of a text towards a claim (FNC-1 labels; news and comments) and TF-IDF similarity",
        "labels": list(STANCE_LABELS),
        "data": _data_section(pairs, domains, corpora),
        "features": list(FEATURE_NAMES),
        "relatedness_features": list(RELATEDNESS_FEATURES),
        "vocabulary_terms": encoder.n_terms,
        "training": config.to_dict(),
        "validation": {
            "protocol": load_protocol(),
            **validation_section,
        },
        "probes": probes,
        "narrative": narrative,
        "limits": [
            "Trained on English news (FNC-1: 2014-2015 rumours and their coverage) and readers' "
            "comments on New York Times debate topics (ARC); other languages and genres (official "
            "statements, fact sheets, long opinion pieces) are outside the training distribution.",
            "On debate claims never seen (ARC claims held out) the model tells related from "
            "unrelated comments but barely tells agree from disagree, and almost never finds "
            "discuss: without the claim's own polarity, word features see the same vocabulary on "
            "both sides of a debate (see the per-domain figures).",
            "FNC-1 pairs a one-line headline with a whole article; in the service a reference's "
            "claims play the headline and the submitted text plays the article, so very short "
            "texts are judged on little evidence (the service warns below 8 words).",
            "'disagree' is rare in the training data (1.7% of FNC-1's pairs) and is the least reliable "
            "label; its F1 varies most from split to split. It is lowest where one story's claims "
            "contradict each other (an actor will play a role / will not play it): word-level "
            "features see the same words on both sides.",
            "A text that shares a claim's words or word parts without being about it (IT "
            "'security architecture', 'secure') can be judged related; its low similarity to the "
            "whole reference is the better signal there.",
            "Scores are not calibrated probabilities outside the FNC-1 and ARC distributions.",
        ],
        "libraries": library_versions(),
        "files": {name: sha256_of(out_dir / name) for name in (ENCODER_FILE, ARRAYS_FILE)},
    }
    write_json(out_dir / CARD_FILE, card)
    (out_dir / CARD_MARKDOWN_FILE).write_text(render_model_card(card), encoding="utf-8")
    progress(f"wrote {out_dir}")
    return card


def _data_section(pairs: PairSet, domains: Sequence[str], corpora: Sequence[tuple[str, Path]]) -> dict:
    """The card's account of the training data: every corpus with its provenance, licence and files."""
    row_domain = [domain_of_body(b, domains) for b in pairs.body_ids]
    entries = []
    for name, directory in corpora:
        rows = [i for i, d in enumerate(row_domain) if d == name]
        stances = [pairs.labels[i] for i in rows]
        entries.append(
            {
                "domain": name,
                **CORPUS_FACTS[name],
                "files": {f: sha256_of(directory / f) for f in (STANCES_FILE, BODIES_FILE)},
                "pairs": len(rows),
                "bodies": sum(domain_of_body(b, domains) == name for b in pairs.bodies),
                "label_counts": {s: stances.count(s) for s in STANCE_LABELS},
            }
        )
    return {
        "corpora": entries,
        "pairs": len(pairs),
        "bodies": len(pairs.bodies),
        "label_counts": {s: pairs.labels.count(s) for s in STANCE_LABELS},
    }


def _mean_report(reports: list[dict]) -> dict:
    keys = ("fnc_score", "macro_f1", "accuracy", "similarity_roc_auc", "related_roc_auc")
    mean: dict[str, Any] = {
        k: round(float(np.mean([r[k] for r in reports if r[k] is not None])), 4)
        if any(r[k] is not None for r in reports)
        else None
        for k in keys
    }
    mean["f1"] = {
        label: round(float(np.mean([r["per_class"][label]["f1"] for r in reports])), 4)
        for label in STANCE_LABELS
    }
    if all("domains" in r for r in reports) and reports:
        mean["domains"] = {
            name: _mean_report([r["domains"][name] for r in reports if name in r["domains"]])
            for name in reports[0]["domains"]
        }
    return mean


def evaluate(model: LoadedModel, stances_path: Path, bodies_path: Path) -> dict:
    """FNC score, accuracy, per-class F1, macro-F1 and confusion matrix on a labelled file pair."""
    pairs = read_pairs(stances_path, bodies_path, require_labels=True)
    predictions = predict_pairs(model.encoder, model.stance, pairs)
    report = evaluation_report(pairs.labels, predictions.labels)
    report["model"] = {"id": model.model_id, "version": model.version}
    return report


def evaluate_narrative(
    model: LoadedModel, seeds_dir: Path, passages_path: Path, reference_id: str | None = None
) -> dict:
    """:func:`narrative_report` of a loaded model, with its id and version."""
    report = narrative_report(model.encoder, model.stance, seeds_dir, passages_path, reference_id)
    report["model"] = {"id": model.model_id, "version": model.version}
    return report


def read_passages(passages_path: Path) -> list[dict]:
    """The labelled passages of a JSONL file: objects with ``text`` and ``label`` (one of the
    four stances), other keys kept as they are; blank lines are skipped.

    Raises :class:`DataFormatError` naming the line of a malformed passage.
    """
    passages = []
    with open(passages_path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFormatError(
                    f"{passages_path}, line {line_number}: not JSON ({error.msg})"
                ) from None
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise DataFormatError(f"{passages_path}, line {line_number}: expected an object with 'text'")
            if item.get("label") not in STANCE_LABELS:
                raise DataFormatError(
                    f"{passages_path}, line {line_number}: 'label' must be one of {', '.join(STANCE_LABELS)}"
                )
            passages.append(item)
    return passages


def seed_scorer(encoder: TextEncoder, stance: StanceModel, seeds_dir: Path) -> Scorer:
    """A :class:`Scorer` of ``encoder`` and ``stance`` over the references in ``seeds_dir``,
    as the service builds it."""
    references, default_id = load_reference_directory(seeds_dir)
    prepared = {r.id: prepare_reference(r, encoder) for r in references}
    return Scorer(encoder, stance, prepared, default_id)


def narrative_report(
    encoder: TextEncoder,
    stance: StanceModel,
    seeds_dir: Path,
    passages_path: Path,
    reference_id: str | None = None,
) -> dict:
    """Figures on labelled passages scored against a reference, as the service scores them.

    ``passages_path`` is a JSONL file of objects with ``id``, ``text`` and ``label`` (one of
    the four stances; other keys such as ``genre`` are kept for the breakdown). Reports the
    4-way figures of :func:`evaluation_report`, related-vs-unrelated accuracy, the similarity's
    ROC-AUC for related vs unrelated, and accuracy per genre. Passages whose language differs
    from the reference's (no stance) count as ``unrelated``.

    Raises :class:`DataFormatError` naming the line of a malformed passage.
    """
    passages = read_passages(passages_path)
    scorer = seed_scorer(encoder, stance, seeds_dir)
    results = scorer.score([p["text"] for p in passages], reference_id=reference_id)
    truth = [p["label"] for p in passages]
    predicted = [r.stance.label if r.stance is not None else "unrelated" for r in results]
    report = evaluation_report(truth, predicted)
    related_truth = [t != "unrelated" for t in truth]
    report["related_accuracy"] = round(
        float(np.mean([(p != "unrelated") == t for p, t in zip(predicted, related_truth, strict=True)])), 4
    )
    if 0 < sum(related_truth) < len(related_truth):
        report["similarity_roc_auc"] = round(
            float(roc_auc_score(related_truth, [r.similarity for r in results])), 4
        )
    genres: dict[str, list[bool]] = {}
    for passage, label in zip(passages, predicted, strict=True):
        genres.setdefault(str(passage.get("genre", "unknown")), []).append(label == passage["label"])
    report["accuracy_by_genre"] = {
        genre: {"passages": len(hits), "accuracy": round(sum(hits) / len(hits), 4)}
        for genre, hits in sorted(genres.items())
    }
    report["misses"] = [
        {"id": p.get("id"), "label": p["label"], "predicted": label}
        for p, label in zip(passages, predicted, strict=True)
        if label != p["label"]
    ]
    report["reference"] = scorer.reference(reference_id).id
    return report


PREDICTION_COLUMNS = (
    "Headline",
    "Body ID",
    "Stance",
    "similarity",
    *(f"p_{label}" for label in STANCE_LABELS),
)


def write_predictions(model: LoadedModel, stances_path: Path, bodies_path: Path, out: Path) -> int:
    """Write one prediction row per input row, in input order; return the row count.

    A ``Stance`` column in the input is ignored: the output's is the prediction.
    """
    pairs = read_pairs(stances_path, bodies_path, ignore_labels=True)
    predictions = predict_pairs(model.encoder, model.stance, pairs)
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        for i in range(len(pairs)):
            writer.writerow(
                [
                    pairs.headlines[i],
                    pairs.body_ids[i],
                    predictions.labels[i],
                    f"{predictions.similarity[i]:.4f}",
                    *(f"{p:.4f}" for p in predictions.probabilities[i]),
                ]
            )
    return len(pairs)
