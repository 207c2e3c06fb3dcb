"""Stage-1 (related vs unrelated) experiments on cached pair features of the story splits (issue 13).

``cache SEED...`` stores, per story split, the pair features stage2_experiments.py caches (the
same encoder, augmentations and features as ``discourse validate``), then two latent-semantic
features of every training and held-out pair: the cosine of claim and text, and the largest
cosine of claim and one of the text's sentences, in the space of a truncated SVD of the word
TF-IDF vectors of the split's training texts only (its distinct claims and bodies: the
documents the encoder's vocabulary and IDF are fitted on). ``run SEED...`` fits stage 2 once
per split as the shipped model does (kept under ``--cache``: every stage-1 variant shares it),
then each stage-1 variant, and prints, per corpus, stage 1's ROC-AUC and related-vs-unrelated
accuracy at the shipped threshold, then the 4-way figures. Variant ``lr8`` is the shipped
stage 1 (its figures are 5.0.0's ``discourse validate`` figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from service.cli import DEFAULT_ARC_DIR
from service.domain.encoding import TextEncoder
from service.domain.pair_features import FEATURE_NAMES
from service.domain.stance import STANCE_LABELS, LatentSpace, as_label_indices
from service.domain.vectors import blend_cosines
from service.training.fnc import PairSet, evaluation_report, story_of, story_split
from service.training.pipeline import corpora_of, read_training_pairs
from service.training.trainer import (
    RELATEDNESS_FEATURES,
    TrainingConfig,
    _standardiser,
    augment,
    fit_encoder,
    fit_latent_space,
    fit_stance_model,
    pair_feature_matrix,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage2_experiments import DATA, cache_split, load_split

LSA_FEATURES = ("lsa_cos", "lsa_max_sentence_cos")
RELATED = STANCE_LABELS.index("unrelated")


@dataclasses.dataclass
class EncodedPairs:
    """Word TF-IDF rows of the distinct claims, texts and texts' sentences of a pair set."""

    claim_row: np.ndarray  # (pairs,) row of each pair's claim in claims
    text_row: np.ndarray  # (pairs,) row of each pair's text in texts
    claims: sp.csr_matrix
    texts: sp.csr_matrix
    sentences: sp.csr_matrix
    sentence_bounds: np.ndarray  # (texts, 2) [start, end) of each text's sentences

    @classmethod
    def of(cls, encoder: TextEncoder, pairs: PairSet) -> EncodedPairs:
        headlines = list(dict.fromkeys(pairs.headlines))
        body_ids = list(dict.fromkeys(pairs.body_ids))
        encoded = encoder.encode([pairs.bodies[b] for b in body_ids])
        owner, texts = encoded.sentence_owner, np.arange(len(body_ids))
        h_index = {h: i for i, h in enumerate(headlines)}
        b_index = {b: i for i, b in enumerate(body_ids)}
        return cls(
            claim_row=np.array([h_index[h] for h in pairs.headlines]),
            text_row=np.array([b_index[b] for b in pairs.body_ids]),
            claims=encoder.encode(headlines, claims=True).word,
            texts=encoded.word,
            sentences=encoded.sentence_word,
            sentence_bounds=np.column_stack(
                [np.searchsorted(owner, texts), np.searchsorted(owner, texts, side="right")]
            ),
        )


def lsa_pair_features(svd: TruncatedSVD, encoded: EncodedPairs, rows: np.ndarray) -> np.ndarray:
    """(len(rows), 2): cosine of claim and text, and the best sentence's, in the SVD space."""
    space = LatentSpace(svd.components_)
    claims = space.project(encoded.claims)
    texts = space.project(encoded.texts)
    result = np.zeros((len(rows), 2))
    h_rows, b_rows = encoded.claim_row[rows], encoded.text_row[rows]
    result[:, 0] = np.einsum("ij,ij->i", claims[h_rows], texts[b_rows])
    rows_of_text: dict[int, list[int]] = {}
    for i, text in enumerate(b_rows):
        rows_of_text.setdefault(int(text), []).append(i)
    for text, positions in rows_of_text.items():
        start, end = encoded.sentence_bounds[text]
        if end > start:
            sentences = space.project(encoded.sentences[start:end])
            result[positions, 1] = (sentences @ claims[h_rows[positions]].T).max(axis=0)
    return result


def fit_lsa(documents: sp.csr_matrix, components: int) -> TruncatedSVD:
    return TruncatedSVD(n_components=components, random_state=0).fit(documents)


def cache_lsa(seed: int, cache: Path, components: int, folds: int = 5) -> None:
    """The split's LSA features of its (augmented) training pairs and held-out pairs.

    The held-out pairs' come from an SVD of every training text. A training pair's come from
    an SVD fitted without its claim's story (``folds`` story-grouped folds, as the wording
    model's out-of-fold scores): with the SVD of every training text, the training pairs'
    topics are in the space and their cosines are higher than those of unseen stories
    (``train_in_sample`` keeps those for comparison).
    """
    config = TrainingConfig()
    pairs, domains = read_training_pairs(corpora_of(DATA / "fnc-1", DEFAULT_ARC_DIR))
    train_rows, validation_rows = story_split(pairs, holdout=0.2, seed=seed, domains=domains)
    train, validation = pairs.subset(train_rows), pairs.subset(validation_rows)
    encoder = fit_encoder(train, config.encoder)
    headlines = list(dict.fromkeys(train.headlines))
    body_ids = list(train.bodies)
    documents = sp.vstack(
        [
            encoder.encode(headlines, claims=True).word,
            encoder.encode([train.bodies[b] for b in body_ids]).word,
        ]
    ).tocsr()
    story = story_of(train)
    document_story = np.array([story["h:" + h] for h in headlines] + [story["b:" + b] for b in body_ids])
    augmented = augment(train, encoder, config)
    _, meta = load_split(seed, cache)
    if augmented.headlines != meta["train_headlines"] or augmented.body_ids != meta["train_bodies"]:
        raise RuntimeError(f"split {seed}: the cached training pairs differ from those rebuilt")
    svd = fit_lsa(documents, components)
    encoded_train = EncodedPairs.of(encoder, augmented)
    all_rows = np.arange(len(augmented))
    in_sample = lsa_pair_features(svd, encoded_train, all_rows)
    out_of_fold = np.zeros_like(in_sample)
    pair_story = np.array([story["h:" + h] for h in augmented.headlines])
    names = sorted(set(document_story))
    # The folds of trainer.fit_latent_space (seeded with the training seed, not the split's).
    order = np.random.default_rng(config.seed).permutation(len(names))
    fold_of = {names[j]: i % folds for i, j in enumerate(order)}
    pair_fold = np.array([fold_of[s] for s in pair_story])
    document_fold = np.array([fold_of[s] for s in document_story])
    for fold in range(folds):
        fold_svd = fit_lsa(documents[document_fold != fold], components)
        rows = np.flatnonzero(pair_fold == fold)
        out_of_fold[rows] = lsa_pair_features(fold_svd, encoded_train, rows)
    with_latent = dataclasses.replace(config, latent_components=components)
    trained, cosines = fit_latent_space(encoder, augmented, with_latent)
    if not np.allclose(cosines, out_of_fold[:, 0], rtol=0, atol=1e-9):
        raise RuntimeError(f"split {seed}: the out-of-fold cosines differ from fit_latent_space's")
    if not np.allclose(np.abs(trained.components), np.abs(svd.components_), rtol=0, atol=1e-9):
        raise RuntimeError(f"split {seed}: the latent space differs from fit_latent_space's")
    encoded_val = EncodedPairs.of(encoder, validation)
    np.savez_compressed(
        cache / f"split{seed}_lsa{components}.npz",
        train=out_of_fold,
        train_in_sample=in_sample,
        val=lsa_pair_features(svd, encoded_val, np.arange(len(validation))),
        explained=svd.explained_variance_ratio_,
    )


def stage2_conditional(seed: int, cache: Path, x: np.ndarray, x_val: np.ndarray, labels: list[str]):
    """The shipped stage 2's P(agree, disagree, discuss | related) of the held-out pairs (cached)."""
    path = cache / f"split{seed}_stage2.npz"
    if not path.exists():
        model = fit_stance_model(x, labels, TrainingConfig())
        np.savez_compressed(
            path,
            conditional=model.stance.predict_proba(x_val),
            shipped_related=model.relatedness.predict_proba(x_val)[:, 1],
        )
    stored = np.load(path)
    return stored["conditional"], stored["shipped_related"]


def _logistic(x: np.ndarray, y: np.ndarray, x_val: np.ndarray) -> np.ndarray:
    mean, scale = _standardiser(x)
    model = LogisticRegression(C=TrainingConfig().relatedness_c, max_iter=2000)
    model.fit((x - mean) / scale, y)
    return model.predict_proba((x_val - mean) / scale)[:, 1]


def _trees(
    rounds: int, depth: int, rate: float
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    def fit(x: np.ndarray, y: np.ndarray, x_val: np.ndarray) -> np.ndarray:
        model = HistGradientBoostingClassifier(
            learning_rate=rate,
            max_iter=rounds,
            max_depth=depth,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=0,
        )
        model.fit(x, y)
        return model.predict_proba(x_val)[:, 1]

    return fit


BASE_COLUMNS = [FEATURE_NAMES.index(n) for n in RELATEDNESS_FEATURES]
# name: (LSA features added to the 8 shipped ones, learner, training pairs' LSA features)
VARIANTS: dict[str, tuple[tuple[str, ...], Callable, str]] = {
    "lr8": ((), _logistic, "train"),
    "trees8": ((), _trees(200, 3, 0.05), "train"),
    "trees8_d5": ((), _trees(200, 5, 0.1), "train"),
    "lr8+lsa": (("lsa_cos",), _logistic, "train"),
    "lr8+lsa+sent": (LSA_FEATURES, _logistic, "train"),
    "trees8+lsa": (("lsa_cos",), _trees(200, 3, 0.05), "train"),
    "trees8+lsa+sent": (LSA_FEATURES, _trees(200, 3, 0.05), "train"),
    "lr8+lsa+sent_in_sample": (LSA_FEATURES, _logistic, "train_in_sample"),
    "trees8+lsa+sent_in_sample": (LSA_FEATURES, _trees(200, 3, 0.05), "train_in_sample"),
}


def run_split(seed: int, cache: Path, components: int, names: list[str]) -> dict:
    """Per variant and corpus, the figures of one split."""
    arrays, meta = load_split(seed, cache)
    lsa = np.load(cache / f"split{seed}_lsa{components}.npz")
    x, x_val = arrays["x_train"], arrays["x_val"]
    y = as_label_indices(meta["train_labels"]) != RELATED
    conditional, shipped = stage2_conditional(seed, cache, x, x_val, meta["train_labels"])
    truth = meta["val_labels"]
    val_related = as_label_indices(truth) != RELATED
    similarity = blend_cosines(
        x_val[:, FEATURE_NAMES.index("cos_word")],
        x_val[:, FEATURE_NAMES.index("cos_char")],
        meta["char_weight"],
    )
    threshold = TrainingConfig().related_threshold
    results = {}
    for name in names:
        extra, fit, source = VARIANTS[name]
        extra_columns = [LSA_FEATURES.index(n) for n in extra]
        train_x = np.column_stack([x[:, BASE_COLUMNS], lsa[source][:, extra_columns]])
        val_x = np.column_stack([x_val[:, BASE_COLUMNS], lsa["val"][:, extra_columns]])
        p_related = fit(train_x, y.astype(int), val_x)
        if name == "lr8" and not np.allclose(p_related, shipped, rtol=0, atol=1e-9):
            raise RuntimeError(f"split {seed}: lr8 is not the shipped stage 1")
        probabilities = np.column_stack([p_related[:, None] * conditional, 1.0 - p_related])
        decided = np.where(p_related >= threshold, np.argmax(conditional, axis=1), RELATED)
        labels = [STANCE_LABELS[i] for i in decided]
        results[name] = {}
        for corpus in meta["domains"]:
            rows = np.flatnonzero(meta["val_domain"] == corpus)
            report = evaluation_report([truth[i] for i in rows], [labels[i] for i in rows])
            results[name][corpus] = {
                "related_auc": roc_auc_score(val_related[rows], 1.0 - probabilities[rows, 3]),
                "related_acc": float(np.mean((p_related[rows] >= threshold) == val_related[rows])),
                "fnc_score": report["fnc_score"],
                "macro_f1": report["macro_f1"],
                "disagree_f1": report["per_class"]["disagree"]["f1"],
                "similarity_auc": roc_auc_score(val_related[rows], similarity[rows]),
                "lsa_cos_auc": roc_auc_score(val_related[rows], lsa["val"][rows, 0]),
            }
    return results


COLUMNS = ("related_auc", "related_acc", "fnc_score", "macro_f1", "disagree_f1")


def table(per_split: dict[int, dict]) -> str:
    """Markdown: one row per variant, corpus and split, then the mean over splits."""
    lines = [
        "| variant | corpus | split | stage-1 ROC-AUC | related acc. | FNC score | macro-F1 | F1 disagree |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    first = next(iter(per_split.values()))
    for name in first:
        for corpus in first[name]:
            rows = [per_split[s][name][corpus] for s in per_split]
            for seed, row in zip(per_split, rows, strict=True):
                lines.append(
                    f"| {name} | {corpus} | {seed} | "
                    + " | ".join(f"{row[c]:.4f}" if c != "fnc_score" else f"{row[c]:.2f}" for c in COLUMNS)
                    + " |"
                )
            means = {c: float(np.mean([r[c] for r in rows])) for c in COLUMNS}
            lines.append(
                f"| {name} | {corpus} | mean | "
                + " | ".join(f"{means[c]:.4f}" if c != "fnc_score" else f"{means[c]:.3f}" for c in COLUMNS)
                + " |"
            )
    lines.append("")
    lines.append("Similarity ROC-AUC (not stage 1): blended cosines (shipped) and the LSA cosine alone")
    for corpus in first[next(iter(first))]:
        for key in ("similarity_auc", "lsa_cos_auc"):
            values = [per_split[s][next(iter(first))][corpus][key] for s in per_split]
            lines.append(
                f"- {corpus} {key}: "
                + ", ".join(f"{v:.4f}" for v in values)
                + f"; mean {np.mean(values):.4f}"
            )
    return "\n".join(lines)


# The variants a TrainingConfig can express: name -> (relatedness_kind, latent cosine or not).
TRAINABLE = {
    "lr8": ("logistic", False),
    "trees8": ("trees", False),
    "lr8+lsa": ("logistic", True),
    "trees8+lsa": ("trees", True),
}


def narrative(components: int) -> str:
    """Each trainable stage-1 variant fitted on every training pair (as ``discourse train``'s
    final model) beside the shipped stage 2 and wording model, scored on the narrative
    development set as the service scores it (measured, never tuned on)."""
    from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR
    from service.loaders.artifacts import load_model
    from service.training.pipeline import NARRATIVE_SET, narrative_report, read_passages, seed_scorer

    shipped = load_model(DEFAULT_MODEL_DIR)
    config = dataclasses.replace(TrainingConfig(), latent_components=components)
    pairs, _ = read_training_pairs(corpora_of(DATA / "fnc-1", DEFAULT_ARC_DIR))
    encoder = fit_encoder(pairs, config.encoder)
    if encoder.word_idf.tobytes() != shipped.encoder.word_idf.tobytes():
        raise RuntimeError("the encoder fitted on every pair is not the shipped model's")
    train = augment(pairs, encoder, config)
    features = pair_feature_matrix(encoder, train)  # stage 1 reads no wording column
    latent, cosines = fit_latent_space(encoder, train, config)
    passages = read_passages(NARRATIVE_SET)
    truth = [p["label"] != "unrelated" for p in passages]
    lines = [
        "| variant | related acc. | P(related) ROC-AUC | 4-way macro-F1 | unrelated found | related found |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, (kind, with_latent) in TRAINABLE.items():
        x = np.column_stack([features, cosines]) if with_latent else features
        stage = fit_stance_model(
            x,
            train.labels,
            dataclasses.replace(config, relatedness_kind=kind, stance_kind="logistic"),
            latent=latent if with_latent else None,
        )
        model = dataclasses.replace(shipped.stance, relatedness=stage.relatedness, latent=stage.latent)
        report = narrative_report(encoder, model, DEFAULT_SEEDS_DIR, NARRATIVE_SET)
        results = seed_scorer(encoder, model, DEFAULT_SEEDS_DIR).score([p["text"] for p in passages])
        auc = roc_auc_score(truth, [r.related or 0.0 for r in results])
        confusion = np.array(report["confusion"]["matrix"])
        lines.append(
            f"| {name} | {report['related_accuracy']:.4f} | {auc:.4f} | {report['macro_f1']:.4f} | "
            f"{confusion[3, 3]} of {confusion[3].sum()} | "
            f"{confusion[:3, :3].sum()} of {confusion[:3].sum()} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["cache", "run", "narrative"])
    parser.add_argument("seeds", type=int, nargs="*", help="story splits (cache, run)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "stage1-experiments",
        help="cached features of the splits",
    )
    parser.add_argument("--components", type=int, default=150, help="SVD components of the LSA space")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="default: all")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.command == "narrative":
        with threadpool_limits(limits=1):
            print(narrative(args.components))
        return
    if args.command == "cache":
        for seed in args.seeds:
            start = time.time()
            with threadpool_limits(limits=1):
                if not (args.cache / f"split{seed}.npz").exists():
                    cache_split(seed, args.cache)
                cache_lsa(seed, args.cache, args.components)
            print(f"split {seed} cached in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
        return
    names = args.variant or list(VARIANTS)
    per_split = {}
    for seed in args.seeds:
        start = time.time()
        with threadpool_limits(limits=1):
            per_split[seed] = run_split(seed, args.cache, args.components, names)
        print(f"split {seed} run in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    print(f"LSA: {args.components} components; splits {args.seeds}")
    print(table(per_split))


if __name__ == "__main__":
    main()
