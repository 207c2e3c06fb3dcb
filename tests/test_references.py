"""Reference files (TOML in seeds/): parsing, every refusal naming the file, derived claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import DEFAULT_SEEDS_DIR
from service.domain.encoding import TextEncoder
from service.domain.references import (
    DERIVATION_METHOD,
    MAX_DERIVED_CLAIMS,
    MIN_DERIVED_CLAIMS,
    Claim,
    Reference,
    ReferenceContentError,
    content_id,
    derive_claims,
    is_full_sentence,
    prepare_reference,
    states_thesis,
)
from service.loaders.reference_files import (
    MAX_CLAIMS,
    ReferenceFileError,
    load_reference_directory,
    load_reference_file,
)
from tests.helpers import tiny_encoder_config

BODY = (
    "Officials confirmed that a meteorite hit the market in Managua. "
    "The crater is five metres deep. "
    "Residents heard a loud boom at night. "
    "Experts from the university examined the rock fragments. "
    "The government said nobody was hurt. "
    "Some people doubted the story at first."
)

VALID = f'''
id = "managua-meteorite"
title = "Meteorite hits Managua"
author = "A. Reporter"
language = "en"
default = true
claims_origin = "written by hand"
body = """{BODY}"""

[[claims]]
id = "meteorite-hit"
text = "A meteorite hit Managua."
source = "a meteorite hit the market in Managua"

[[claims]]
id = "nobody-hurt"
text = "Nobody was hurt."
'''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    """A tiny encoder fitted on the reference body and a few other texts."""
    return TextEncoder.fit(
        [BODY, "A shark attacked a surfer.", "The meteorite crater was a hoax."], config=tiny_encoder_config()
    )


def test_a_valid_file_is_parsed(tmp_path: Path) -> None:
    reference = load_reference_file(write(tmp_path / "ref.toml", VALID))
    assert reference.id == "managua-meteorite"
    assert reference.title == "Meteorite hits Managua"
    assert reference.body == BODY
    assert reference.default is True
    assert reference.claims_origin == "written by hand"
    assert reference.metadata == {"author": "A. Reporter", "language": "en"}
    first, second = reference.claims
    assert (first.id, first.text) == ("meteorite-hit", "A meteorite hit Managua.")
    assert first.source is not None
    assert (
        BODY[first.source.start : first.source.end]
        == first.source.text
        == "a meteorite hit the market in Managua"
    )
    assert second.source is None


def test_the_shipped_seed_loads_and_its_sources_are_in_its_body() -> None:
    references, default_id = load_reference_directory(DEFAULT_SEEDS_DIR)
    assert default_id == "valdai-eurasian-security-2024"
    (reference,) = references
    assert len(reference.claims) >= 3
    for claim in reference.claims:
        assert claim.source is not None
        assert reference.body[claim.source.start : claim.source.end] == claim.source.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace('title = "Meteorite hits Managua"\n', ""), "'title' must be a non-empty string"),
        (lambda t: t.replace('id = "managua-meteorite"', 'id = "   "'), "'id' must be a non-empty string"),
        (
            lambda t: t.replace('id = "managua-meteorite"', 'id = "Managua_Meteorite"'),
            "id 'Managua_Meteorite'",
        ),
        (lambda t: t.replace('id = "nobody-hurt"', 'id = "no body"'), "claim 2: id 'no body'"),
        (
            lambda t: t.replace('id = "nobody-hurt"', 'id = "meteorite-hit"'),
            "claim 2: id 'meteorite-hit' is used twice",
        ),
        (
            lambda t: t.replace('source = "a meteorite hit', 'source = "a comet hit'),
            "claim 1: source 'a comet hit",
        ),
        (
            lambda t: t.replace('text = "Nobody was hurt."\n', ""),
            "claim 2: 'text' must be a non-empty string",
        ),
        (lambda t: t.replace("default = true", 'default = "yes"'), "'default' must be true or false"),
        (lambda t: t.replace('language = "en"', "year = 2024"), "metadata 'year' must be a string"),
        (lambda t: t.replace('title = "Meteorite hits Managua"', 'title = "unterminated'), "not valid TOML"),
        (lambda t: 'id = "twice"\n' + t, "not valid TOML"),  # a key defined twice
    ],
)
def test_malformed_files_are_refused_naming_the_file(tmp_path: Path, change, message: str) -> None:
    path = write(tmp_path / "broken.toml", change(VALID))
    with pytest.raises(ReferenceFileError) as error:
        load_reference_file(path)
    assert str(error.value).startswith(f"{path}:")
    assert message in str(error.value)


def test_too_many_claims_are_refused(tmp_path: Path) -> None:
    claims = "".join(f'\n[[claims]]\nid = "c{i}"\ntext = "Claim {i}."\n' for i in range(MAX_CLAIMS + 1))
    path = write(tmp_path / "many.toml", VALID.split("[[claims]]")[0] + claims)
    with pytest.raises(ReferenceFileError, match=f"at most {MAX_CLAIMS}"):
        load_reference_file(path)


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(VALID.replace("A. Reporter", "A. Rep\xf6rter").encode("latin-1"))
    with pytest.raises(ReferenceFileError, match=rf"{path}: cannot be read"):
        load_reference_file(path)


def test_directory_with_one_reference_makes_it_the_default(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", VALID.replace("default = true\n", ""))
    references, default_id = load_reference_directory(tmp_path)
    assert [r.id for r in references] == ["managua-meteorite"] and default_id == "managua-meteorite"


def test_directory_with_several_references_needs_exactly_one_default(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", VALID)
    write(tmp_path / "b.toml", VALID.replace('id = "managua-meteorite"', 'id = "second"'))
    with pytest.raises(ReferenceFileError) as error:
        load_reference_directory(tmp_path)
    assert str(error.value).startswith(f"{tmp_path}:")
    assert "found 2 (managua-meteorite, second)" in str(error.value)

    write(
        tmp_path / "b.toml",
        VALID.replace('id = "managua-meteorite"', 'id = "second"').replace("default = true", ""),
    )
    references, default_id = load_reference_directory(tmp_path)
    assert [r.id for r in references] == ["managua-meteorite", "second"] and default_id == "managua-meteorite"

    write(tmp_path / "a.toml", VALID.replace("default = true\n", ""))
    with pytest.raises(ReferenceFileError, match="found 0"):
        load_reference_directory(tmp_path)


def test_duplicate_reference_ids_across_files_name_both_files(tmp_path: Path) -> None:
    first = write(tmp_path / "a.toml", VALID)
    second = write(tmp_path / "b.toml", VALID.replace("default = true\n", ""))
    with pytest.raises(ReferenceFileError) as error:
        load_reference_directory(tmp_path)
    assert str(error.value) == f"{second}: id 'managua-meteorite' is already used by {first}"


def test_missing_or_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReferenceFileError, match="reference directory not found"):
        load_reference_directory(tmp_path / "nowhere")
    with pytest.raises(ReferenceFileError, match=r"no reference files \(\*\.toml\)"):
        load_reference_directory(tmp_path)


def test_stated_claims_are_kept_when_prepared(tmp_path: Path, encoder: TextEncoder) -> None:
    reference = load_reference_file(write(tmp_path / "ref.toml", VALID))
    prepared = prepare_reference(reference, encoder)
    assert [c.id for c in prepared.claims] == ["meteorite-hit", "nobody-hurt"]
    assert prepared.claims_origin == "written by hand"
    assert len(prepared.claim_vectors) == 2
    assert [p.text for p in prepared.passages][:2] == [
        "Officials confirmed that a meteorite hit the market in Managua.",
        "The crater is five metres deep.",
    ]
    for passage in prepared.passages:
        assert BODY[passage.start : passage.end] == passage.text


# Two points, each made in six full sentences, and some short fragments: the derived claims must
# cover both points, not paraphrase one five times.
METEORITE_POINT = [
    "Officials confirmed that a meteorite hit the market in Managua on Sunday.",
    "The meteorite that hit Managua left a crater five metres deep in the market.",
    "Scientists said the meteorite crater in Managua was made by a real rock from space.",
    "The market in Managua was hit by a meteorite, the officials repeated on Monday.",
    "Residents of Managua heard the meteorite hit the market with a loud boom.",
    "Experts examined fragments of the meteorite found in the Managua crater.",
]
HOAX_POINT = [
    "Several bloggers claimed the whole story was a hoax invented by the government.",
    "The hoax claim spread quickly among bloggers who doubted the official story.",
    "Bloggers said the government invented the story as a hoax to distract people.",
    "No evidence supported the bloggers who called the official story a hoax.",
    "The government rejected the hoax claim made by the bloggers on Tuesday.",
    "Newspapers reported that the hoax story came from two anonymous bloggers.",
]
TWO_POINTS = " ".join(
    [s for pair in zip(METEORITE_POINT, HOAX_POINT, strict=True) for s in pair] + ["Boom.", "Surfer."]
)


@pytest.fixture(scope="module")
def two_point_encoder() -> TextEncoder:
    return TextEncoder.fit([TWO_POINTS, BODY, "A shark attacked a surfer."], config=tiny_encoder_config())


def test_derived_claims_are_full_sentences_with_offsets_in_body_order(two_point_encoder: TextEncoder) -> None:
    reference = Reference(id="r", title="Meteorite story", body=TWO_POINTS)
    prepared = prepare_reference(reference, two_point_encoder)
    claims = prepared.claims
    assert MIN_DERIVED_CLAIMS <= len(claims) <= MAX_DERIVED_CLAIMS
    assert all(c.id.startswith("sentence-") for c in claims)  # "Meteorite story" states no thesis
    starts = [c.source.start for c in claims]
    assert starts == sorted(starts)
    for claim in claims:
        assert TWO_POINTS[claim.source.start : claim.source.end] == claim.text
        assert claim.text in METEORITE_POINT + HOAX_POINT  # full sentences, never "Boom."
    assert prepared.claims_origin == DERIVATION_METHOD
    assert derive_claims(reference, two_point_encoder) == claims


def test_derived_claims_cover_every_point(two_point_encoder: TextEncoder) -> None:
    claims = derive_claims(Reference(id="r", title="Meteorite story", body=TWO_POINTS), two_point_encoder)
    texts = [c.text for c in claims]
    assert 2 <= len([t for t in texts if t in METEORITE_POINT]) <= len(texts) - 2
    assert 2 <= len([t for t in texts if t in HOAX_POINT]) <= len(texts) - 2


def test_the_title_is_a_claim_only_when_it_states_a_thesis(two_point_encoder: TextEncoder) -> None:
    for title, is_claim in [
        ("Meteorite hits Managua", True),
        ("The meteorite was a hoax", True),
        ("Is the Managua meteorite a hoax?", False),
        ("Managua meteorite", False),
    ]:
        assert states_thesis(title) is is_claim, title
        claims = derive_claims(Reference(id="r", title=title, body=TWO_POINTS), two_point_encoder)
        assert (claims[0].id == "title" and claims[0].text == title) is is_claim
        assert MIN_DERIVED_CLAIMS <= len(claims) <= MAX_DERIVED_CLAIMS


def test_full_sentences_are_standalone_statements() -> None:
    assert is_full_sentence("Officials confirmed that a meteorite hit the market.")
    assert not is_full_sentence("It confirmed that a meteorite hit the market.")  # leans on the one before
    assert not is_full_sentence("Did a meteorite really hit the market in Managua?")
    assert not is_full_sentence("officials confirmed that a meteorite hit the market.")
    assert not is_full_sentence("A meteorite hit.")  # under six words


def test_a_short_body_gives_fewer_derived_claims(encoder: TextEncoder) -> None:
    claims = derive_claims(Reference(id="r", title="Meteorite", body="A meteorite hit Managua."), encoder)
    assert [c.id for c in claims] == ["sentence-1"]


def test_the_content_id_depends_on_the_normalised_content_only() -> None:
    a = content_id("T", "a text", None, None)
    assert a.startswith("sha256:") and len(a) == len("sha256:") + 64
    assert a == content_id("T", "a text", None, None)
    assert len({a, content_id("T", "a text.", None, None), content_id("T", "a text", ["c"], None)}) == 3
    assert a != content_id("T", "a text", None, "en")


def test_a_body_or_claim_without_words_is_refused(encoder: TextEncoder) -> None:
    with pytest.raises(ReferenceContentError, match="text: has no words") as raised:
        prepare_reference(Reference(id="r", title="T", body="... !!!"), encoder)
    assert raised.value.field == "text"
    claims = (Claim("a", "A meteorite hit."), Claim("b", "?!"))
    with pytest.raises(ReferenceContentError, match=r"claims.1: claim 'b' has no words") as raised:
        prepare_reference(Reference(id="r", title="T", body=BODY, claims=claims), encoder)
    assert raised.value.field == "claims.1"
