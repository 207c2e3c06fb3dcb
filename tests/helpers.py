"""Shared test helpers: a tiny inline FNC-format corpus and a tiny model trained on it.

Nothing here reads the real FNC-1 data: every corpus is written to a temporary
directory by the test that needs it, so the suite runs without ../shared.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.config import DEFAULT_SEEDS_DIR
from service.domain.encoding import EncoderConfig
from service.training.pipeline import BODIES_FILE, STANCES_FILE, train
from service.training.trainer import TrainingConfig

# (object, event, place, town): each topic is one story of the tiny corpus.
TOPICS: tuple[tuple[str, str, str, str], ...] = (
    ("meteorite", "crater", "market", "Managua"),
    ("shark", "attack", "beach", "Sydney"),
    ("robot", "strike", "factory", "Detroit"),
    ("volcano", "eruption", "glacier", "Reykjavik"),
    ("mural", "theft", "gallery", "Bristol"),
    ("penguin", "escape", "zoo", "Edinburgh"),
    ("hacker", "breach", "bank", "Toronto"),
    ("comet", "sighting", "observatory", "Santiago"),
    ("tiger", "rescue", "circus", "Mumbai"),
    ("submarine", "collision", "harbour", "Oslo"),
)


@dataclass(frozen=True)
class TinyCorpus:
    """An FNC-format corpus: stance rows ``(headline, body id, stance)`` and bodies by id."""

    rows: list[tuple[str, str, str]]
    bodies: dict[str, str]


def headline_of(topic: Sequence[str]) -> str:
    """The claim (headline) of a topic."""
    thing, event, place, town = topic
    return f"{thing.capitalize()} {event} reported at the {place} in {town}, officials say"


def tiny_corpus(n_topics: int = len(TOPICS)) -> TinyCorpus:
    """A corpus of ``n_topics`` stories with all four labels.

    Each story has one headline and three bodies (agree, disagree, discuss);
    each headline is also paired, as unrelated, with bodies of two other stories.
    """
    topics = TOPICS[:n_topics]
    bodies: dict[str, str] = {}
    rows: list[tuple[str, str, str]] = []
    for t, (thing, event, place, town) in enumerate(topics):
        bodies[f"{t}-0"] = (
            f"Officials confirmed that a {thing} {event} happened at the {place} in {town}. "
            f"The {thing} was verified by experts on Monday. Evidence shows the {event} is real "
            f"and police announced new measures for the {place}."
        )
        bodies[f"{t}-1"] = (
            f"The story of a {thing} {event} at the {place} in {town} is a hoax. "
            f"Officials denied the report and said the photos were fake. "
            f"Experts rejected the claims about the {thing} as fabricated nonsense."
        )
        bodies[f"{t}-2"] = (
            f"Reports claim a {thing} {event} may have happened at the {place} in {town}. "
            f"Sources said it was allegedly seen late at night. "
            f"It is unclear whether the {thing} story is true, according to local media."
        )
    for t, topic in enumerate(topics):
        headline = headline_of(topic)
        for suffix, stance in (("0", "agree"), ("1", "disagree"), ("2", "discuss")):
            rows.append((headline, f"{t}-{suffix}", stance))
        for step in (1, 3):
            other = (t + step) % len(topics)
            rows.append((headline, f"{other}-{t % 3}", "unrelated"))
    return TinyCorpus(rows, bodies)


def write_fnc_csvs(
    directory: Path,
    corpus: TinyCorpus | None = None,
    *,
    stance_column: bool = True,
    stances_name: str = STANCES_FILE,
    bodies_name: str = BODIES_FILE,
) -> tuple[Path, Path]:
    """Write ``corpus`` as an FNC-format (stances, bodies) pair of CSV files; return their paths."""
    corpus = corpus or tiny_corpus()
    directory.mkdir(parents=True, exist_ok=True)
    stances_path, bodies_path = directory / stances_name, directory / bodies_name
    with open(bodies_path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Body ID", "articleBody"])
        writer.writerows(corpus.bodies.items())
    with open(stances_path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Headline", "Body ID", "Stance"] if stance_column else ["Headline", "Body ID"])
        for headline, body_id, stance in corpus.rows:
            writer.writerow([headline, body_id, stance] if stance_column else [headline, body_id])
    return stances_path, bodies_path


def tiny_encoder_config() -> EncoderConfig:
    """An encoder small enough to fit in milliseconds (4096 hashed n-gram columns, every word kept)."""
    return EncoderConfig(char_hash_bits=12, word_min_df=1)


def tiny_training_config() -> TrainingConfig:
    """A training configuration that fits the tiny corpus in well under a second per stage."""
    return TrainingConfig(encoder=tiny_encoder_config(), trees_rounds=15, trees_depth=2)


def train_tiny_model(
    out_dir: Path, data_dir: Path, seeds_dir: Path = DEFAULT_SEEDS_DIR, jobs: int = 1
) -> dict:
    """Write the tiny corpus to ``data_dir``, train on it into ``out_dir``; return the card.

    ``train`` fits on one thread whatever ``jobs`` is; with ``jobs > 1``, in worker processes.
    """
    write_fnc_csvs(data_dir)
    return train(
        data_dir,
        out_dir,
        seeds_dir,
        tiny_training_config(),
        model_id="tiny-test-model",
        version="0.0.1",
        progress=lambda _message: None,
        jobs=jobs,
    )
