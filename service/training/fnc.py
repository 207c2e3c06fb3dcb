"""FNC-format data: reading the CSV files, joining corpora, story-disjoint splits and the official score.

FNC-1 (Fake News Challenge stage 1, fakenewschallenge.org) is built from the
Emergent data set (Ferreira and Vlachos, NAACL 2016). A *stance file* has the
columns ``Headline``, ``Body ID`` and (when labelled) ``Stance``; a *bodies
file* has ``Body ID`` and ``articleBody``.
"""

from __future__ import annotations

import csv
import io
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.domain.errors import DiscourseError
from service.domain.stance import STANCE_LABELS

PRIMARY_DOMAIN = "fnc-1"
"""The domain whose body ids are kept as read when corpora are joined."""
ARC_DOMAIN = "arc"
KNOWN_DOMAINS: tuple[str, ...] = (PRIMARY_DOMAIN, ARC_DOMAIN)
"""The corpora training can join (see :func:`join_domains`)."""

# FNC-1 bodies can exceed the csv module's default field limit of 128 KiB.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True)
class PairSet:
    """Rows of a stance file joined with their bodies, in file order."""

    headlines: list[str]
    body_ids: list[str]
    bodies: dict[str, str]
    stances: list[str] | None  # None when the file has no Stance column

    def __len__(self) -> int:
        return len(self.headlines)

    @property
    def labels(self) -> list[str]:
        """The stances, for a labelled file; raises :class:`DataFormatError` for one without."""
        if self.stances is None:
            raise DataFormatError("these pairs have no Stance column: training and evaluation need one")
        return self.stances

    def subset(self, rows: Sequence[int]) -> PairSet:
        """The pairs at ``rows``, keeping only the bodies they use."""
        body_ids = [self.body_ids[i] for i in rows]
        return PairSet(
            headlines=[self.headlines[i] for i in rows],
            body_ids=body_ids,
            bodies={b: self.bodies[b] for b in dict.fromkeys(body_ids)},
            stances=None if self.stances is None else [self.stances[i] for i in rows],
        )


class DataFormatError(DiscourseError, ValueError):
    """A stance or bodies file is not in FNC-1 format; the message names the file and row."""


def read_pairs(
    stances_path: Path, bodies_path: Path, *, require_labels: bool = False, ignore_labels: bool = False
) -> PairSet:
    """Read an FNC-format stance file and its bodies file.

    With ``ignore_labels`` a ``Stance`` column is not read at all (not even
    checked), as when predicting: the result has ``stances=None``.
    """
    bodies: dict[str, str] = {}
    with _open_csv(bodies_path) as handle:
        reader = csv.DictReader(handle)
        _require_columns(bodies_path, reader.fieldnames, ("Body ID", "articleBody"))
        for row in reader:
            bodies[row["Body ID"].strip()] = row["articleBody"] or ""

    headlines: list[str] = []
    body_ids: list[str] = []
    stances: list[str] = []
    with _open_csv(stances_path) as handle:
        reader = csv.DictReader(handle)
        _require_columns(stances_path, reader.fieldnames, ("Headline", "Body ID"))
        labelled = "Stance" in (reader.fieldnames or []) and not ignore_labels
        if require_labels and not labelled:
            raise DataFormatError(f"{stances_path}: a 'Stance' column is needed to evaluate")
        for line, row in enumerate(reader, start=2):
            body_id = (row["Body ID"] or "").strip()
            if body_id not in bodies:
                raise DataFormatError(
                    f"{stances_path}, row {line}: Body ID {body_id!r} is not in {bodies_path}"
                )
            headlines.append(row["Headline"] or "")
            body_ids.append(body_id)
            if labelled:
                stance = (row["Stance"] or "").strip()
                if stance not in STANCE_LABELS:
                    raise DataFormatError(
                        f"{stances_path}, row {line}: unknown Stance {stance!r}; "
                        f"expected one of {', '.join(STANCE_LABELS)}"
                    )
                stances.append(stance)
    return PairSet(headlines, body_ids, bodies, stances if labelled else None)


def _open_csv(path: Path) -> io.StringIO:
    """The text of a UTF-8 CSV file (a byte order mark is allowed), ready for :mod:`csv`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataFormatError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text (invalid byte at offset {error.start})") from None
    return io.StringIO(text, newline="")


def _require_columns(path: Path, present: Sequence[str] | None, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in (present or [])]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {', '.join(missing)}")


def join_domains(parts: Sequence[tuple[str, PairSet]]) -> PairSet:
    """One pair set of several FNC-format corpora (domains), in the order given.

    The first domain's body ids are kept as read (so a model trained on it
    alone is trained on the same pairs as before); every other domain's are
    prefixed ``"<domain>:"``, which keeps the corpora's ids apart and tells
    :func:`domain_of_body` where a pair comes from.

    Raises :class:`DataFormatError` when a domain is named twice or a first-domain
    body id already carries another domain's prefix.
    """
    if not parts:
        raise ValueError("join_domains needs at least one domain")
    names = [name for name, _ in parts]
    if len(set(names)) != len(names):
        raise DataFormatError(f"domains must be distinct, got {names}")
    (first_name, first), *others = parts
    prefixes = tuple(f"{name}:" for name, _ in others)
    clash = next((b for b in first.bodies if prefixes and b.startswith(prefixes)), None)
    if clash is not None:
        raise DataFormatError(f"{first_name}: Body ID {clash!r} looks like another domain's id")
    headlines, body_ids = list(first.headlines), list(first.body_ids)
    bodies = dict(first.bodies)
    labelled = all(p.stances is not None for _, p in parts)
    stances = list(first.stances) if labelled and first.stances is not None else None
    for name, part in others:
        headlines += part.headlines
        body_ids += [f"{name}:{b}" for b in part.body_ids]
        bodies.update({f"{name}:{b}": text for b, text in part.bodies.items()})
        if stances is not None and part.stances is not None:
            stances += part.stances
    return PairSet(headlines, body_ids, bodies, stances)


def domain_of_body(body_id: str, domains: Sequence[str] = ()) -> str:
    """The domain a (joined) body id comes from: the first of ``domains`` whose prefix it
    carries, else :data:`PRIMARY_DOMAIN`."""
    for name in domains:
        if name != PRIMARY_DOMAIN and body_id.startswith(f"{name}:"):
            return name
    return PRIMARY_DOMAIN


def row_domains(pairs: PairSet, domains: Sequence[str]) -> list[str]:
    """The domain of every row of ``pairs`` (that of its body), in row order."""
    return [domain_of_body(b, domains) for b in pairs.body_ids]


def story_of(pairs: PairSet) -> dict[str, str]:
    """Story of every headline (key ``"h:" + headline``) and body (``"b:" + body id``).

    A story is a connected component of the graph whose nodes are headlines
    and bodies and whose edges are the related (not ``unrelated``) pairs; it
    is named by one of its nodes.
    """
    if pairs.stances is None:
        raise ValueError("stories need labelled pairs")
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        root = node
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[node] != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    for headline, body_id, stance in zip(pairs.headlines, pairs.body_ids, pairs.stances, strict=True):
        h, b = find("h:" + headline), find("b:" + body_id)
        if stance != "unrelated" and h != b:
            parent[max(h, b)] = min(h, b)
    for body_id in pairs.bodies:
        find("b:" + body_id)
    return {node: find(node) for node in list(parent)}


def story_split(
    pairs: PairSet, holdout: float = 0.2, seed: int = 0, domains: Sequence[str] = ()
) -> tuple[list[int], list[int]]:
    """Split pair rows into (train, validation) with no story on both sides.

    A story is a connected component of the graph whose nodes are headlines
    and bodies and whose edges are the related (not ``unrelated``) pairs; in
    ARC, a claim with the comments written about it. About ``holdout`` of the
    stories (by count, chosen with ``seed``) are held out, of each domain
    separately when ``domains`` names the joined corpora (see :func:`join_domains`).
    Validation rows are the pairs whose headline belongs to a held-out
    story; training rows are the pairs whose headline and body both belong
    to kept stories, so no held-out headline or body is ever trained on (nor
    a body related to a held-out claim, even where it is paired with a kept
    claim as unrelated).
    """
    story = story_of(pairs)
    # A story's domain is that of its bodies; a headline with only unrelated pairs is a
    # story of its own, in the domain of the bodies it is paired with.
    domain_of_story: dict[str, str] = {}
    for node, name in story.items():
        if node.startswith("b:"):
            domain_of_story.setdefault(name, domain_of_body(node[2:], domains))
    for headline, body_id in zip(pairs.headlines, pairs.body_ids, strict=True):
        domain_of_story.setdefault(story["h:" + headline], domain_of_body(body_id, domains))
    rng = random.Random(seed)
    held_out: set[str] = set()
    for name in sorted(set(domain_of_story.values()), key=lambda d: (d != PRIMARY_DOMAIN, d)):
        stories = sorted(s for s, d in domain_of_story.items() if d == name)
        held_out.update(rng.sample(stories, round(holdout * len(stories))))
    train, validation = [], []
    for row, (headline, body_id) in enumerate(zip(pairs.headlines, pairs.body_ids, strict=True)):
        headline_story, body_story = story["h:" + headline], story["b:" + body_id]
        if headline_story in held_out:
            validation.append(row)
        elif body_story not in held_out:
            train.append(row)
    return train, validation


def fnc_score(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """The official FNC-1 score as a percentage of the best possible score."""
    score = best = 0.0
    for t, p in zip(truth, predicted, strict=True):
        t_related, p_related = t != "unrelated", p != "unrelated"
        best += 1.0 if t_related else 0.25
        if t == p:
            score += 0.25
            if t_related:
                score += 0.75
        elif t_related and p_related:
            score += 0.25
    return 100.0 * score / best if best else 0.0


def evaluation_report(truth: Sequence[str], predicted: Sequence[str]) -> dict:
    """FNC score, accuracy, per-class precision/recall/F1, macro-F1 and the confusion matrix."""
    labels = list(STANCE_LABELS)
    index = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((4, 4), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        confusion[index[t], index[p]] += 1
    per_class = {}
    for i, label in enumerate(labels):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i].sum() if confusion[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(confusion[i].sum()),
        }
    return {
        "pairs": int(confusion.sum()),
        "fnc_score": round(fnc_score(truth, predicted), 2),
        "accuracy": round(float(np.trace(confusion) / max(confusion.sum(), 1)), 4),
        "macro_f1": round(float(np.mean([c["f1"] for c in per_class.values()])), 4),
        "per_class": per_class,
        "confusion": {
            "labels": labels,
            "rows_are": "true label",
            "matrix": confusion.tolist(),
        },
    }
