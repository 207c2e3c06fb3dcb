"""The many-texts results as downloadable files: JSONL as ``discourse score`` writes it, and CSV.

CSV cells are escaped against formula injection: a spreadsheet runs a cell that starts
with ``=``, ``+``, ``-`` or ``@`` (and some a tab or a carriage return) as a formula, and
ids and messages come from users' files.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from service.domain.stance import STANCE_LABELS

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula."""


BYTE_ORDER_MARK = "\ufeff"
"""Starts the CSV: without it, Excel reads UTF-8 as the system's legacy code page."""


def escape_formula(cell: str) -> str:
    """``cell`` with a leading apostrophe if it starts with a formula trigger, else unchanged."""
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell


def results_jsonl(results: Sequence[dict], reference_id: str) -> str:
    """One JSON object per line: ``{"reference": ..., **result}``, the lines of ``discourse score``."""
    return "".join(json.dumps({"reference": reference_id, **r}, ensure_ascii=False) + "\n" for r in results)


def csv_header(claim_ids: Sequence[str]) -> list[str]:
    """The CSV columns: the text's scores, then the stance and similarity towards each claim."""
    columns = ["id", "reference", "similarity", "related", "stance", *STANCE_LABELS, "warnings"]
    for claim_id in claim_ids:
        columns += [f"claim {claim_id} stance", f"claim {claim_id} similarity"]
    return columns


def results_csv(results: Sequence[dict], reference_id: str, claim_ids: Sequence[str]) -> str:
    """The results as CSV (UTF-8 with a byte order mark, CRLF line ends), one row per text, escaped.

    A result whose ``stance`` is null has empty stance and probability cells; its
    warnings (``code: message``, separated by ``; ``) say why.
    """
    out = io.StringIO()
    out.write(BYTE_ORDER_MARK)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(csv_header(claim_ids))
    for result in results:
        stance = result.get("stance")
        row = [
            result["id"],
            reference_id,
            _number(result["similarity"]),
            _number(result["related"]),
            stance["label"] if stance else "",
            *(_number(stance["scores"][label]) if stance else "" for label in STANCE_LABELS),
            "; ".join(f"{w['code']}: {w['message']}" for w in result["warnings"]),
        ]
        claims = {claim["id"]: claim for claim in result["claims"]}
        for claim_id in claim_ids:
            claim = claims.get(claim_id)
            claim_stance = claim.get("stance") if claim else None
            row += [
                claim_stance["label"] if claim_stance else "",
                _number(claim["similarity"]) if claim else "",
            ]
        writer.writerow([escape_formula(str(cell)) for cell in row])
    return out.getvalue()


def _number(value: float) -> str:
    return repr(float(value))
