"""Worked examples for the OpenAPI document (a response shape, shortened to one claim)."""

SCORE_REQUEST_EXAMPLE = {
    "texts": [
        {
            "id": "a1",
            "text": "NATO expansion threatened Russia, and the Euro-Atlantic security order has "
            "failed; Russia and China are right to build a new Eurasian security architecture.",
        }
    ],
    "explain": True,
}

SCORE_RESPONSE_EXAMPLE = {
    "reference": {
        "id": "valdai-eurasian-security-2024",
        "title": "Is neutering NATO the next Russia-China project?",
    },
    "model": {"id": "fnc1-stance", "version": "1.0.0"},
    "results": [
        {
            "id": "a1",
            "similarity": 0.31,
            "related": 0.99,
            "stance": {
                "label": "agree",
                "scores": {"agree": 0.71, "disagree": 0.05, "discuss": 0.23, "unrelated": 0.01},
            },
            "claims": [
                {
                    "id": "nato-expansion-threat",
                    "similarity": 0.42,
                    "related": 0.99,
                    "stance": {
                        "label": "agree",
                        "scores": {"agree": 0.74, "disagree": 0.04, "discuss": 0.21, "unrelated": 0.01},
                    },
                }
            ],
            "warnings": [],
            "evidence": {
                "passages": [
                    {
                        "text_start": 0,
                        "text_end": 152,
                        "reference_start": 1942,
                        "reference_end": 2027,
                        "reference_passage": "As a result, Russia increasingly views NATO expansion as a "
                        "threat to its security.",
                        "similarity": 0.38,
                    }
                ],
                "shared_terms": [{"term": "nato", "weight": 0.21}, {"term": "eurasian", "weight": 0.17}],
            },
        }
    ],
}
