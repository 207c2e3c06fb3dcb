"""Derived claims against the seed's written ones, and the narrative set with either.

Usage: ``python bench/derived_claims.py [--out bench/results/derived_claims.json]``

1. Derives claims for the seed reference as if it stated none (the method of
   ``service.domain.references.derive_claims``) and, for each of its nine written claims, gives
   the derived claim closest to it: the word/character TF-IDF cosine the service uses for claim
   similarity, and whether the derived sentence overlaps the written claim's ``source`` passage.
2. Runs ``discourse evaluate --narrative tests/data/narrative/passages.jsonl`` twice through the
   same function: with the seed as written, and with a copy of the seed whose ``[[claims]]``
   tables are removed (so the service derives them); reports both and how many passages change
   label. This is also the way to evaluate any reference with derived claims: ``--seeds`` a
   directory holding copies without ``[[claims]]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR  # noqa: E402
from service.domain.references import prepare_reference  # noqa: E402
from service.loaders.artifacts import load_model  # noqa: E402
from service.loaders.reference_files import load_reference_directory  # noqa: E402
from service.training.pipeline import evaluate_narrative  # noqa: E402

MATCH_COSINE = 0.3
"""A written claim counts as matched when a derived claim has at least this cosine with it."""
NARRATIVE = REPO / "tests" / "data" / "narrative" / "passages.jsonl"


def without_claims(seeds_dir: Path, into: Path) -> None:
    """Copy every reference file of ``seeds_dir`` into ``into`` without its ``[[claims]]`` tables.

    The tables come last in a reference file (TOML puts every later key inside them), so the
    file is cut at the first one.
    """
    for path in sorted(seeds_dir.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        cut = text.find("\n[[claims]]")
        (into / path.name).write_text(text if cut < 0 else text[: cut + 1], encoding="utf-8")


def claim_figures(model, seeds_dir: Path) -> dict:
    references, default_id = load_reference_directory(seeds_dir)
    seed = next(r for r in references if r.id == default_id)
    encoder = model.encoder
    derived = prepare_reference(replace(seed, claims=()), encoder)
    written = encoder.encode([c.text for c in seed.claims], claims=True)
    made = encoder.encode([c.text for c in derived.claims], claims=True)
    cosine = encoder.similarity(written, made)
    rows = []
    for k, claim in enumerate(seed.claims):
        best = int(cosine[k].argmax())
        match = derived.claims[best]
        overlaps = [
            d.id
            for d in derived.claims
            if d.source is not None
            and claim.source is not None
            and d.source.start < claim.source.end
            and claim.source.start < d.source.end
        ]
        rows.append(
            {
                "written": claim.id,
                "written_text": claim.text,
                "best_derived": match.id,
                "best_derived_text": match.text,
                "cosine": round(float(cosine[k, best]), 3),
                "derived_overlapping_its_source": overlaps,
            }
        )
    cosines = [r["cosine"] for r in rows]
    return {
        "reference": seed.id,
        "derived_claims": [{"id": c.id, "text": c.text} for c in derived.claims],
        "claims_origin": derived.claims_origin,
        "written_claims": len(seed.claims),
        "matched_at_cosine": MATCH_COSINE,
        "matched": sum(c >= MATCH_COSINE for c in cosines),
        "with_source_overlap": sum(bool(r["derived_overlapping_its_source"]) for r in rows),
        "mean_best_cosine": round(sum(cosines) / len(cosines), 3),
        "per_written_claim": rows,
    }


def narrative_figures(model, seeds_dir: Path) -> dict:
    keep = ("accuracy", "macro_f1", "fnc_score", "related_accuracy", "similarity_roc_auc")
    written = evaluate_narrative(model, seeds_dir, NARRATIVE)
    with tempfile.TemporaryDirectory() as folder:
        without_claims(seeds_dir, Path(folder))
        derived = evaluate_narrative(model, Path(folder), NARRATIVE)
    missed_written = {m["id"]: m["predicted"] for m in written["misses"]}
    missed_derived = {m["id"]: m["predicted"] for m in derived["misses"]}
    changed = sorted(
        i
        for i in set(missed_written) | set(missed_derived)
        if missed_written.get(i, "correct") != missed_derived.get(i, "correct")
    )
    return {
        "passages": sum(1 for line in NARRATIVE.open(encoding="utf-8") if line.strip()),
        "written": {k: written.get(k) for k in keep},
        "derived": {k: derived.get(k) for k in keep},
        "passages_whose_outcome_changes": len(changed),
        "changed": changed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS_DIR)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    model = load_model(DEFAULT_MODEL_DIR)
    report = {
        "model": {"id": model.model_id, "version": model.version},
        "claims": claim_figures(model, args.seeds),
        "narrative": narrative_figures(model, args.seeds),
    }
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
