"""Rendering ``card.json`` as the readable ``MODEL_CARD.md``."""

from __future__ import annotations

import numpy as np

from service.domain.stance import STANCE_LABELS


def render_model_card(card: dict) -> str:
    """Markdown for people; every figure comes from ``card`` (nothing is typed in by hand)."""
    validation = card["validation"]
    lines = [
        f"# Model card: {card['id']} {card['version']}",
        "",
        f"Task: {card['task']}. Labels: {', '.join(card['labels'])}.",
        f"Trained by `{card['trained_by']}` (artifact format {card['format_version']}), with "
        + ", ".join(f"{k} {v}" for k, v in sorted(card["libraries"].items()))
        + ".",
        "",
        "## Data",
        "",
        f"{card['data']['pairs']} pairs, {card['data']['bodies']} bodies "
        f"({', '.join(f'{k} {v}' for k, v in card['data']['label_counts'].items())}), from:",
        "",
        *(line for corpus in card["data"]["corpora"] for line in _corpus_lines(corpus)),
        "## Model",
        "",
        "Two stages over pair features of (claim, text):",
        f"1. related vs unrelated: logistic regression on {', '.join(card['relatedness_features'])};",
        f"2. agree / disagree / discuss on related pairs: {_describe_stance_stage(card['training'])} "
        f"on all {len(card['features'])} features, with class weights (balanced weight) ** "
        f"{card['training']['class_weight_power']}.",
        "",
        "Three of the features (`wording_*`) come from the wording model: a logistic regression "
        "(C = " + str(card["training"]["wording_c"]) + ", balanced class weights) on the text's "
        "word TF-IDF vector alone, fitted on the related training pairs. Stage 2 is trained on its "
        f"out-of-fold scores ({card['training']['wording_folds']} folds that never split a story).",
        f"A pair is unrelated when P(related) < {card['training']['related_threshold']}; otherwise "
        "it takes the most probable related label. Vocabulary "
        f"({card['vocabulary_terms']} terms) and IDF are fitted on the training texts only.",
        "",
        "Features: " + ", ".join(f"`{f}`" for f in card["features"]) + ".",
        "",
        "## Validation",
        "",
        validation["protocol"],
        "",
        *validation_table(validation),
    ]
    lines += [
        "",
        "Training pairs per split (every pair that touches a held-out story dropped; with the hard "
        "negatives and short versions added): "
        + ", ".join(
            f"split {r['split_seed']}"
            + (f" ({r['train_domain']} only)" if "train_domain" in r else "")
            + f": {r['train_pairs']} (validation {r['validation_pairs']})"
            for r in validation["splits"] + validation.get("cross_domain", [])
        )
        + ".",
    ]
    probes = card["probes"]
    lines += [
        "",
        "## Probe texts on the default reference",
        "",
        f"{probes['texts']} short texts written for this project (`service/training/probes.toml`), "
        f"scored against `{probes['reference']}`: the label matches a reader's in "
        f"{probes['label_matches']} of {probes['texts']}; related vs unrelated matches in "
        f"{probes['related_vs_unrelated_matches']} of {probes['texts']}.",
        "",
        "| probe | expected | model | related | similarity |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {r['id']} | {r['expected']} | {r['label']} | {r['related']} | {r['similarity']} |"
            for r in probes["results"]
        ),
        "",
        *_narrative_lines(card.get("narrative")),
        "## Known limits",
        "",
        *(f"- {limit}" for limit in card["limits"]),
        "",
        "## Files",
        "",
        "| file | sha256 |",
        "| --- | --- |",
        *(f"| {name} | `{digest}` |" for name, digest in sorted(card["files"].items())),
        "",
        "Checked at every load: a missing or altered file stops the service from starting.",
        "",
    ]
    return "\n".join(lines)


def _narrative_lines(narrative: dict | None) -> list[str]:
    """The narrative development set's figures (nothing when the card has none)."""
    if not narrative:
        return []
    per_class = narrative["per_class"]
    lines = [
        "## Narrative development set",
        "",
        f"{narrative['pairs']} real passages about the seed article's subject "
        "(`tests/data/narrative/passages.jsonl`, labelled by its `GUIDELINE.md`; measured, never "
        f"trained or tuned on), scored against `{narrative['reference']}` as the service scores "
        f"them: 4-way macro-F1 {narrative['macro_f1']}, accuracy {narrative['accuracy']}, "
        f"related-vs-unrelated accuracy {narrative['related_accuracy']}, similarity ROC-AUC "
        f"{narrative.get('similarity_roc_auc')}; F1 "
        + ", ".join(f"{label} {per_class[label]['f1']}" for label in STANCE_LABELS)
        + ".",
        "",
        "| true \\ predicted | " + " | ".join(STANCE_LABELS) + " |",
        "| --- | " + " | ".join(["---"] * len(STANCE_LABELS)) + " |",
        *(
            f"| {label} | " + " | ".join(str(v) for v in values) + " |"
            for label, values in zip(STANCE_LABELS, narrative["confusion"]["matrix"], strict=True)
        ),
        "",
        "Accuracy by genre: "
        + ", ".join(
            f"{genre} {g['accuracy']} ({g['passages']})"
            for genre, g in narrative["accuracy_by_genre"].items()
        )
        + ".",
        "",
    ]
    return lines


def _corpus_lines(corpus: dict) -> list[str]:
    return [
        f"### {corpus['domain']}: {corpus['name']}",
        "",
        f"{corpus['pairs']} pairs, {corpus['bodies']} bodies "
        f"({', '.join(f'{k} {v}' for k, v in corpus['label_counts'].items())}).",
        f"Provenance: {corpus['provenance']}.",
        f"Licence: {corpus['licence']}.",
        f"Held out: {corpus['held_out']}.",
        "",
        "| file | sha256 |",
        "| --- | --- |",
        *(f"| {name} | `{digest}` |" for name, digest in sorted(corpus["files"].items())),
        "",
    ]


def validation_table(validation: dict) -> list[str]:
    """Markdown lines: each domain's figures per split and their mean, the confusion matrix
    summed over the splits, and the cross-domain fits beside the joint model.

    ``validation`` has ``splits`` (reports with per-domain ``domains``), ``mean`` and
    optionally ``cross_domain``; a report without ``domains`` (one corpus) is one domain, "all".
    """
    splits = validation["splits"]
    # FNC-1 first, then the others by name: the same order from a card in memory and one read back
    # from card.json (whose keys are sorted).
    domains = sorted(splits[0].get("domains", {"all": None}), key=lambda name: (name != "fnc-1", name))

    def of(report: dict, name: str) -> dict | None:
        return report if "domains" not in report else report["domains"].get(name)

    header = (
        "| domain | trained on | split | pairs | FNC score | macro-F1 | "
        + " | ".join(f"F1 {label}" for label in STANCE_LABELS)
        + " | similarity ROC-AUC |"
    )
    lines = [header, "| " + " | ".join(["---"] * (7 + len(STANCE_LABELS))) + " |"]

    def row(name: str, trained_on: str, split: str, r: dict, f1: dict | None = None) -> str:
        f1 = f1 or {label: r["per_class"][label]["f1"] for label in STANCE_LABELS}
        return (
            f"| {name} | {trained_on} | {split} | {r.get('pairs', '')} | {r['fnc_score']} | "
            f"{r['macro_f1']} | "
            + " | ".join(str(f1[label]) for label in STANCE_LABELS)
            + f" | {r['similarity_roc_auc']} |"
        )

    joint = "all domains" if len(domains) > 1 else "all"
    for name in domains:
        for report in splits:
            r = of(report, name)
            if r is not None:
                lines.append(row(name, joint, str(report["split_seed"]), r))
        mean = validation["mean"].get("domains", {}).get(name, validation["mean"])
        lines.append(row(name, joint, "mean", {**mean, "pairs": ""}, mean["f1"]))
        for report in validation.get("cross_domain", []):
            r = of(report, name)
            if r is not None:
                lines.append(row(name, f"{report['train_domain']} only", str(report["split_seed"]), r))
    for name in domains:
        confusion = None
        for report in splits:
            r = of(report, name)
            if r is None:
                continue
            matrix = r["confusion"]["matrix"]
            confusion = matrix if confusion is None else (np.array(confusion) + np.array(matrix)).tolist()
        if confusion is None:
            continue
        seeds = ", ".join(str(report["split_seed"]) for report in splits)
        lines += [
            "",
            f"Confusion matrix of {name}, summed over splits {seeds} (rows: true label):",
            "",
            "| true \\ predicted | " + " | ".join(STANCE_LABELS) + " |",
            "| --- | " + " | ".join(["---"] * len(STANCE_LABELS)) + " |",
            *(
                f"| {label} | " + " | ".join(str(v) for v in values) + " |"
                for label, values in zip(STANCE_LABELS, confusion, strict=True)
            ),
        ]
    return lines


def _describe_stance_stage(training: dict) -> str:
    """The stage-2 learner in words, from the training settings."""
    trees = (
        f"boosted trees ({training['trees_rounds']} rounds of depth {training['trees_depth']}, "
        f"learning rate {training['trees_learning_rate']}"
    )
    layer = f"one hidden layer of {training['stance_hidden']} units"
    kind = training["stance_kind"]
    if kind == "trees":
        return trees + ")"
    if kind == "logistic":
        return f"multinomial logistic regression (C = {training['stance_c']})"
    if kind == "mlp":
        return f"a network with {layer}"
    members = training["mlp_members"]
    return (
        f"the weighted mean of the probabilities of {trees}; weight {training['trees_weight']}) and "
        f"of {members} networks with {layer} that differ only in their random seed (weight "
        f"{round((1 - training['trees_weight']) / members, 4)} each)"
    )
