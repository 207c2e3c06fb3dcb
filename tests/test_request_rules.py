"""Request rules of issue 15: ids that cannot collide, strict booleans, Content-Type parameters, 413 limit.

In-process contract tests, a property test of the id rule (service.domain.input_rules,
shared with the command line) and the same answers through a real gunicorn.
"""

from __future__ import annotations

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from service.domain.input_rules import assign_ids, duplicate_ids

SCORE = "/v1/score"


# --- Ids --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_ids", "expected"),
    [
        ([None, "0"], ["0#2", "0"]),
        ([None, "0", "0#2"], ["0#3", "0", "0#2"]),
        ([None, None, "1"], ["0", "1#2", "1"]),
        (["a", None, "b"], ["a", "1", "b"]),
        ([None, None], ["0", "1"]),
        (["1", None], ["1", "1#2"]),
    ],
)
def test_missing_ids_default_to_the_index_unless_it_is_taken(given_ids, expected) -> None:
    assert assign_ids(given_ids) == expected


@given(
    st.lists(st.one_of(st.none(), st.sampled_from(["0", "1", "2", "0#2", "1#2", "0#3", "x"])), max_size=12)
)
def test_assigned_ids_are_distinct_and_keep_the_given_ones(given_ids: list[str | None]) -> None:
    present = [i for i in given_ids if i is not None]
    if duplicate_ids(present):
        return  # refused before ids are assigned (the schema's rule, tested below)
    ids = assign_ids(given_ids)
    assert len(ids) == len(given_ids) == len(set(ids))
    for position, (given_id, assigned) in enumerate(zip(given_ids, ids, strict=True)):
        if given_id is not None:
            assert assigned == given_id
        elif str(position) not in present:
            assert assigned == str(position)
        else:
            assert assigned.startswith(f"{position}#")


def test_a_default_id_never_collides_with_a_given_one(client) -> None:
    """Before: two results with id "0"."""
    response = client.post(SCORE, json={"texts": [{"text": "A"}, {"id": "0", "text": "B"}]})
    assert response.status_code == 200
    assert [r["id"] for r in response.get_json()["results"]] == ["0#2", "0"]


def test_repeated_given_ids_are_still_refused(client) -> None:
    response = client.post(SCORE, json={"texts": [{"id": "a", "text": "A"}, {"id": "a", "text": "B"}]})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "texts"


# --- Strict booleans ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, "off", "", None, [], {}])
def test_explain_must_be_a_json_boolean(client, value) -> None:
    """Before: "yes", 1 and "off" were taken as booleans."""
    response = client.post(SCORE, json={"texts": [{"text": "A text."}], "explain": value})
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["explain"]


@pytest.mark.parametrize("value", [True, False])
def test_explain_takes_true_and_false(client, value) -> None:
    response = client.post(SCORE, json={"texts": [{"text": "A text."}], "explain": value})
    assert response.status_code == 200
    assert ("evidence" in response.get_json()["results"][0]) is value


def test_the_schema_still_documents_a_boolean(client) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["components"]["schemas"]["ScoreRequest"]["properties"]["explain"]["type"] == "boolean"


# --- Content-Type parameters ------------------------------------------------------------------------

HARMLESS_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json;charset=UTF-8",
    'application/json; charset="utf-8"',
    "Application/JSON; Charset=UTF-8",
    "application/json; charset=utf8",
    "application/json; foo=bar",
    "application/json; charset=utf-8; profile=whatever",
]


@pytest.mark.parametrize("content_type", HARMLESS_TYPES)
def test_harmless_content_type_parameters_are_accepted(client, content_type: str) -> None:
    response = client.post(
        SCORE, data=b'{"texts": [{"text": "A text."}]}', headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=latin-1", "text/plain", "application/xml"]
)
def test_content_types_that_change_the_reading_are_refused(client, content_type: str) -> None:
    response = client.post(
        SCORE, data=b'{"texts": [{"text": "A text."}]}', headers={"Content-Type": content_type}
    )
    assert response.status_code == 415


# --- Through a real gunicorn ------------------------------------------------------------------------


@pytest.mark.e2e
def test_request_rules_through_gunicorn(gunicorn) -> None:
    with gunicorn(workers=1, env={"DISCOURSE_RATE_LIMIT_ENABLED": "false"}) as server:
        url = server.base_url + SCORE
        collided = requests.post(url, json={"texts": [{"text": "A"}, {"id": "0", "text": "B"}]}, timeout=30)
        assert [r["id"] for r in collided.json()["results"]] == ["0#2", "0"]
        assert (
            requests.post(url, json={"texts": [{"text": "A"}], "explain": "yes"}, timeout=30).status_code
            == 422
        )
        for content_type in HARMLESS_TYPES:
            response = requests.post(
                url, data=b'{"texts": [{"text": "A"}]}', headers={"Content-Type": content_type}, timeout=30
            )
            assert response.status_code == 200, content_type
        too_large = requests.post(
            url,
            data=b"[" + b" " * (2 * 1024 * 1024) + b"]",
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert too_large.status_code == 413
        # Before: "The request body exceeds the configured limit." without the limit.
        assert "2097152 bytes" in too_large.json()["detail"]
        assert requests.request("TRACE", url, timeout=30).status_code == 405
