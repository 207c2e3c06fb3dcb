"""The worked example of the OpenAPI document.

Only the request is written here: the example response is computed from it
by the loaded model when the app is built, so the documentation never shows
figures the service would not give.
"""

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
