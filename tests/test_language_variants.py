"""A reference in two languages: each text is scored against the variant in its language."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from service.config import DEFAULT_MODEL_DIR, PROJECT_ROOT, Settings
from service.domain.scorer import STANCE_LANGUAGES
from service.http.app import create_app
from service.loaders.reference_files import ReferenceFileError, load_reference_file
from service.loaders.runtime import Runtime, load_runtime

PAIR_DIR = PROJECT_ROOT / "tests" / "data" / "references"
PAIR = PAIR_DIR / "lake-levels.toml"
EN = "The dam upstream is why the lake fell by two metres; engineers found it held back the spring melt."
RU = "Озеро обмелело из-за плотины выше по течению: инженеры выяснили, что она задержала весенний паводок."
FR = "Le barrage en amont explique pourquoi le lac a baissé de deux mètres cet été, selon les ingénieurs."


@pytest.fixture(scope="module")
def pair_runtime() -> Runtime:
    return load_runtime(DEFAULT_MODEL_DIR, PAIR_DIR)


def test_the_file_holds_two_variants_with_claims_aligned_by_id() -> None:
    reference = load_reference_file(PAIR)
    assert reference.metadata["language"] == "en" and list(reference.variants) == ["ru"]
    ru = reference.variants["ru"]
    assert [c.id for c in ru.claims] == [c.id for c in reference.claims]
    for claim in ru.claims:
        assert ru.body[claim.source.start : claim.source.end] == claim.source.text


def test_each_text_is_scored_against_the_variant_in_its_language(pair_runtime: Runtime) -> None:
    assert STANCE_LANGUAGES == ("en",)
    en, ru, fr = pair_runtime.scorer.score([EN, RU, FR], explain=True)
    assert (en.reference_language, ru.reference_language, fr.reference_language) == ("en", "ru", "en")
    # English: everything. Russian: similarity and evidence against the Russian text, no stance.
    assert en.stance is not None and en.related is not None
    assert ru.stance is None and ru.related is None
    # (Its words are not in the English vocabulary: character n-grams carry the similarity.)
    assert [w.code for w in ru.warnings] == ["many_unknown_words", "stance_not_modelled"]
    assert all(c.stance is None and c.similarity > 0 for c in ru.claims)
    assert [c.id for c in ru.claims] == [c.id for c in en.claims]
    assert ru.similarity > 0.1 and en.similarity > 0.1
    ru_body = pair_runtime.scorer.reference().variant("ru").reference.body
    assert ru.evidence.passages and all(
        ru_body[p.reference_start : p.reference_end] == p.reference_passage for p in ru.evidence.passages
    )
    # French has no variant: scored against English, where it is another language.
    assert fr.stance is None and "language_mismatch" in [w.code for w in fr.warnings]


def test_a_russian_text_is_closer_to_the_russian_variant_than_to_the_english(pair_runtime: Runtime) -> None:
    reference = pair_runtime.scorer.reference()
    [against_variant] = pair_runtime.scorer.score([RU])
    # The same text against the English variant alone (a reference without variants).
    english_only = pair_runtime.scorer.score([RU], reference_id=replace(reference, variants={}))[0]
    assert against_variant.similarity > 3 * english_only.similarity


def test_the_api_says_which_variant_and_lists_the_languages(pair_runtime: Runtime) -> None:
    client = create_app(
        Settings(rate_limit_enabled=False, seeds_dir=PAIR_DIR), runtime=pair_runtime
    ).test_client()
    body = client.post("/v1/score", json={"texts": [{"text": EN}, {"text": RU}]}).get_json()
    assert [r["reference_language"] for r in body["results"]] == ["en", "ru"]
    assert body["results"][1]["stance"] is None
    assert "stance_not_modelled" in [w["code"] for w in body["results"][1]["warnings"]]
    listed = client.get("/v1/references").get_json()["references"][0]
    assert listed["languages"] == ["en", "ru"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace('id = "not-drought"\ntext = "Обмеление', 'id = "other"\ntext = "Обмеление'),
            "must have the main claims' ids",
        ),
        (lambda t: t.replace("[variants.ru]", "[variants.Russian]"), "must be a language code"),
        (
            lambda t: t.replace('title = "Новая', 'heading = "Новая'),
            "'variants.ru.heading' is not a variant field",
        ),
        (
            lambda t: t.replace('source = "главная причина', 'source = "не в тексте'),
            "variants.ru.claim 1: source",
        ),
    ],
)
def test_a_broken_variant_is_refused_naming_the_file_and_field(tmp_path: Path, edit, message: str) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(edit(PAIR.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ReferenceFileError, match=message) as raised:
        load_reference_file(broken)
    assert str(broken) in str(raised.value)


def test_the_reference_detail_gives_each_variant_text(pair_runtime: Runtime) -> None:
    client = create_app(
        Settings(rate_limit_enabled=False, seeds_dir=PAIR_DIR), runtime=pair_runtime
    ).test_client()
    detail = client.get("/v1/references/lake-levels").get_json()
    ru = detail["variants"]["ru"]
    assert ru["text"] == pair_runtime.scorer.reference().variant("ru").reference.body
    assert [c["id"] for c in ru["claims"]] == [c["id"] for c in detail["claims"]]
    written = load_reference_file(PAIR).variants["ru"].claims
    for claim, source in zip(ru["claims"], written, strict=True):
        assert ru["text"][claim["source_start"] : claim["source_end"]] == source.source.text
