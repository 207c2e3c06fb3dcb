"""Rendering ``card.json`` as the readable ``MODEL_CARD.md``."""

from __future__ import annotations

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
        f"{card['data']['name']}: {card['data']['pairs']} pairs, {card['data']['bodies']} bodies "
        f"({', '.join(f'{k} {v}' for k, v in card['data']['label_counts'].items())}).",
        f"Provenance: {card['data']['provenance']}.",
        f"Held out: {card['data']['held_out']}.",
        "",
        "| file | sha256 |",
        "| --- | --- |",
        *(f"| {name} | `{digest}` |" for name, digest in sorted(card["data"]["files"].items())),
        "",
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
        "| split seed | train pairs | validation pairs | FNC score | macro-F1 | accuracy | "
        + " | ".join(f"F1 {label}" for label in STANCE_LABELS)
        + " | similarity ROC-AUC | related ROC-AUC |",
        "| " + " | ".join(["---"] * (8 + len(STANCE_LABELS))) + " |",
    ]
    for r in validation["splits"]:
        lines.append(
            f"| {r['split_seed']} | {r['train_pairs']} | {r['validation_pairs']} | {r['fnc_score']} | "
            f"{r['macro_f1']} | {r['accuracy']} | "
            + " | ".join(str(r["per_class"][label]["f1"]) for label in STANCE_LABELS)
            + f" | {r['similarity_roc_auc']} | {r['related_roc_auc']} |"
        )
    mean = validation["mean"]
    lines.append(
        f"| mean | | | {mean['fnc_score']} | {mean['macro_f1']} | {mean['accuracy']} | "
        + " | ".join(str(mean["f1"][label]) for label in STANCE_LABELS)
        + f" | {mean['similarity_roc_auc']} | {mean['related_roc_auc']} |"
    )
    first = validation["splits"][0]
    lines += [
        "",
        f"Confusion matrix on split {first['split_seed']} (rows: true label; columns: "
        f"{', '.join(first['confusion']['labels'])}):",
        "",
        "| true \\ predicted | " + " | ".join(first["confusion"]["labels"]) + " |",
        "| --- | " + " | ".join(["---"] * len(first["confusion"]["labels"])) + " |",
    ]
    for label, row in zip(first["confusion"]["labels"], first["confusion"]["matrix"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
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
