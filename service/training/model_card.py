"""Rendering ``card.json`` as the readable ``MODEL_CARD.md``."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources

import jinja2
import numpy as np

from service.domain.stance import STANCE_LABELS
from service.markdown import markdown_template

TEMPLATE = "model_card.md.j2"
"""The card's layout, a Jinja2 template beside this module (package data)."""


def render_model_card(card: dict) -> str:
    """Markdown for people; every figure comes from ``card`` (nothing is typed in by hand).

    The layout is the Jinja2 template :data:`TEMPLATE`; the parts computed from several
    fields (the stage-2 learner in words, the validation tables) come from the functions here.
    Raises ``jinja2.UndefinedError`` naming the field when ``card`` lacks one the layout needs.
    """
    return _template().render(
        card=card,
        labels=STANCE_LABELS,
        stance_stage=_describe_stance_stage(card["training"]),
        validation_lines=validation_table(card["validation"]),
        key_values=_key_values,
    )


@cache
def _template() -> jinja2.Template:
    source = resources.files("service.training").joinpath(TEMPLATE).read_text(encoding="utf-8")
    return markdown_template(source)


def _key_values(items: Iterable[tuple[object, object]]) -> str:
    """``"k1 v1, k2 v2"`` in the given order."""
    return ", ".join(f"{k} {v}" for k, v in items)


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
