"""Prove that speed work left the scores unchanged: dump every output, bit for bit, and compare.

``python bench/equivalence.py dump OUT.json`` scores a fixed set of ~430 varied texts
(news-like texts of 0 to 30,000 characters, non-English, control characters,
odd whitespace, reference passages, …) against two references (the shipped one,
with stated claims, and a temporary one whose claims are derived), one at a
time and in batches of several sizes, with ``explain`` off and on. It writes

* every :class:`~service.domain.scorer.TextScore` as JSON (floats in full ``repr``), and
* a sha256 of the raw arrays behind them: every matrix of the encoded texts
  (sparse ones in canonical form), the pair features, the similarity and the
  stance probabilities, as exact float bytes.

``python bench/equivalence.py compare A.json B.json`` reports the first differences
and exits 1 if there are any. ``python bench/equivalence.py check [--rev REV]`` does
both: it dumps with the optimised modules (encoding, pair_features, evidence,
scorer, stance, text) as they were at ``REV`` (default: HEAD, so that it checks uncommitted
work) over the current tree, dumps with the working tree, and compares;
identical dumps mean identical outputs. The baseline side also takes ``models/``
and the artifact loader from ``REV``, so outputs can only be identical from the
last model change on (model 5.0.0, trained on FNC-1 and ARC; 4.0.0 was c726a92); the speed work of model 1.0.0
was checked against ae60f22 at 000eb8d (``git checkout 000eb8d`` to repeat it).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OPTIMISED_FILES, REPO, baseline_tree
from corpus import make_text, make_texts

from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR
from service.domain.encoding import EncodedTexts
from service.domain.pair_features import compute_pair_features
from service.loaders.runtime import Runtime, load_runtime

_ODD_TEXTS = (
    "",
    " ",
    "\n\n\t ",
    "NATO",
    "No.",
    "a b c d e f g h i j k l m n o p",
    "12345 678 90 2024 1999",
    "!!! ??? ... ,,, ;;;",
    "Russia and China agreed to start talks on a new security architecture for Eurasia.",
    "Russia and China did not agree to start talks on a new security architecture for Eurasia.",
    "NATO expansion does not threaten Russia's security, the minister said, denying the claim.",
    "Die Sicherheitsarchitektur Europas ist gescheitert, sagte der Minister am Dienstag in Berlin.",
    "Расширение НАТО угрожает безопасности России, заявил министр иностранных дел.",
    "北约扩张威胁俄罗斯安全。中国和俄罗斯同意就欧亚安全架构开始讨论。",
    "La OTAN no amenaza la seguridad de Rusia; el ministro rechazó la afirmación ayer.",
    "İstanbul'da İSTANBUL ıı İİ straße STRASSE ﬁnance Ǆ ǅ ǆ résumé naïve café",
    "Zero\u200bwidth\u200djoiner and soft\u00adhyphen in NATO\u2060security\ufeff texts.",
    "Control\x00chars\x01in\x07the\x1ftext\x7f and\x85 next\u2028line\u2029para.",
    "Non\u00a0breaking\u00a0spaces\u2003em\u2003spaces\u3000ideographic NATO Russia.",
    "Emoji 🙂🙃 in a sentence about NATO 🚀 and Russia 🇷🇺 and China 🇨🇳.",
    "Combining e\u0301 accents a\u0300 and o\u0308 in Euro-Atlantic se\u0301curity.",
    "Windows\r\nline\r\nendings\r\n\r\nand a blank line. NATO expands.",
    "x" * 5000,
    "word " * 3000,
    "NATO " * 700 + "Russia",
    ("A run-on sentence with no full stop about NATO and Russia and China and security " * 40).strip(),
    "\"Quoted.\" (Bracketed!) 'Single?' \u201cCurly.\u201d \u2018Curly?\u2019 Then more text here.",
    "Dr. Smith vs. Mr. Jones, i.e. e.g. U.S. policy, p.m. a.m. Inc. Ltd. etc. NATO.",
    "Tab\tseparated\tvalues\tabout\tNATO\tand\tRussia\tand\tthe\tOSCE.",
    "UPPER CASE TEXT ABOUT NATO EXPANSION THREATENING RUSSIA'S SECURITY.",
    "mixed CaSe TeXt about nato EXPANSION and the osce and eurasia.",
    "don't won't can't isn't NATO's Russia's China's it's o'clock",
    "snake_case_words and CamelCaseWords and numbers_123 and __dunder__",
    "\ud800 lone surrogate \udfff in the text about NATO",
)


def varied_texts(reference_sentences: list[str]) -> list[str]:
    """About 430 texts: odd ones, reference passages mixed with news-like text, many lengths."""
    rng = random.Random(20240229)
    texts = list(_ODD_TEXTS)
    for chars in (30, 80, 200, 500, 1000, 2000, 5000):
        texts += make_texts(30, chars, seed=7)
    texts += make_texts(3, 30_000, seed=7)
    for _ in range(60):
        parts = [make_text(rng, rng.choice((100, 300, 900)))]
        for _ in range(rng.randint(1, 4)):
            parts.insert(rng.randint(0, len(parts)), rng.choice(reference_sentences))
        sep = rng.choice((" ", "\n", "\n\n", "  "))
        text = sep.join(parts)
        if rng.random() < 0.3:
            text = text.replace("NATO", "no NATO").replace(" is ", " is not ")
        if rng.random() < 0.2:
            text = text.upper()
        texts.append(text)
    # Non-ASCII words sprinkled into news-like text (accents, Cyrillic, CJK, emoji, ligatures).
    foreign = ("café", "Müller", "straße", "İzmir", "НАТО", "Россия", "安全", "🙂", "ﬁnal", "naïve", "Ελλάδα")
    for _ in range(120):
        words = make_text(rng, rng.choice((150, 600, 2500))).split(" ")
        for _ in range(rng.randint(1, 6)):
            words.insert(rng.randint(0, len(words)), rng.choice(foreign))
        texts.append(" ".join(words))
    return texts


def _digest(*arrays: object) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if sp.issparse(a):
            m = sp.csr_matrix(a, copy=True)
            m.sum_duplicates()
            m.sort_indices()
            for part in (m.data, m.indices, m.indptr, np.asarray(m.shape)):
                h.update(np.ascontiguousarray(part).tobytes())
        else:
            arr = np.ascontiguousarray(np.asarray(a))
            h.update(str(arr.dtype).encode() + str(arr.shape).encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def _encoded_digest(enc: EncodedTexts) -> str:
    spans = [(s.start, s.end, s.text) for sents in enc.sentences for s in sents]
    return (
        _digest(
            enc.word,
            enc.char,
            enc.lead,
            enc.terms,
            enc.bm25,
            enc.negated,
            enc.lexicon,
            enc.lead_lexicon,
            enc.n_tokens,
            enc.n_known,
            enc.sentence_word,
            enc.sentence_lexicon,
            enc.sentence_owner,
        )
        + hashlib.sha256(repr(spans).encode()).hexdigest()
    )


def _with_extra_reference(seeds_dir: Path, body: str) -> Path:
    """A temporary seeds directory: the shipped references plus one without stated claims."""
    tmp = Path(tempfile.mkdtemp(prefix="equivalence-seeds-"))
    for path in seeds_dir.glob("*.toml"):
        (tmp / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp / "zz-derived.toml").write_text(
        'id = "zz-derived"\ntitle = "Grain, rates and railways"\nbody = """' + body + '"""\n',
        encoding="utf-8",
    )
    return tmp


def dump(out: Path) -> None:
    """Score the fixed inputs and write results and raw-array digests to ``out``."""
    derived_body = "\n\n".join(make_texts(8, 600, seed=99))
    seeds = _with_extra_reference(DEFAULT_SEEDS_DIR, derived_body)
    runtime: Runtime = load_runtime(DEFAULT_MODEL_DIR, seeds)
    scorer = runtime.scorer
    default = scorer.reference()
    reference_sentences = [p.text for p in default.passages]
    texts = varied_texts(reference_sentences)
    record: dict[str, object] = {"n_texts": len(texts), "results": [], "digests": []}
    results: list = record["results"]  # type: ignore[assignment]
    digests: list = record["digests"]  # type: ignore[assignment]
    encoder = scorer.encoder
    for reference_id in sorted(scorer.references):
        reference = scorer.reference(reference_id)
        digests.append(["reference", reference_id, _encoded_digest(reference.body)])
        digests.append(["claims", reference_id, _encoded_digest(reference.claim_vectors)])
        for batch in (1, 7, 64, len(texts)):
            explain_flags = (False, True) if batch in (1, 64) else (True,)
            for explain in explain_flags:
                for lo in range(0, len(texts), batch):
                    chunk = texts[lo : lo + batch]
                    try:
                        scores = scorer.score(chunk, reference_id=reference_id, explain=explain)
                    except Exception as error:  # recorded, so that a change of behaviour shows
                        results.append([reference_id, batch, explain, lo, {"error": repr(error)}])
                        continue
                    for score in scores:
                        results.append([reference_id, batch, explain, lo, dataclasses.asdict(score)])
            # Raw arrays, once per batch size (explain does not change them).
            for lo in range(0, len(texts), batch):
                chunk = texts[lo : lo + batch]
                try:
                    enc = encoder.encode(chunk)
                except Exception as error:
                    digests.append([reference_id, batch, lo, {"error": repr(error)}])
                    continue
                features = _pair_features(scorer, enc, reference.claim_vectors)
                sim = encoder.similarity(enc, reference.body)
                probs = scorer.stance_model.predict_proba(features.reshape(-1, features.shape[-1]))
                digests.append([reference_id, batch, lo, _encoded_digest(enc), _digest(features, sim, probs)])
    out.write_text(json.dumps(record, indent=0, ensure_ascii=True, allow_nan=True), encoding="utf-8")
    print(f"wrote {out}: {len(results)} scores of {len(texts)} texts, {len(digests)} array digests")


ADDED_FIELDS = ("reference_language",)
"""Result fields added after a baseline (a new output, not a changed one): compared only when both
sides have them. ``reference_language`` came with references' language variants (i17)."""


def _without_added_fields(x: list, y: list) -> tuple[list, list]:
    """``x`` and ``y`` without the :data:`ADDED_FIELDS` that only one of their results has."""
    if not (isinstance(x[-1], dict) and isinstance(y[-1], dict)):
        return x, y
    extra = [f for f in ADDED_FIELDS if (f in x[-1]) != (f in y[-1])]
    if not extra:
        return x, y
    return (
        [*x[:-1], {k: v for k, v in x[-1].items() if k not in extra}],
        [*y[:-1], {k: v for k, v in y[-1].items() if k not in extra}],
    )


def compare(a: Path, b: Path) -> int:
    """Print differences between two dumps; 0 if identical."""
    left = json.loads(a.read_text(encoding="utf-8"))
    right = json.loads(b.read_text(encoding="utf-8"))
    problems = fixed = 0
    if left["n_texts"] != right["n_texts"]:
        print(f"n_texts: {left['n_texts']} vs {right['n_texts']}")
        problems += 1
    for key in ("results", "digests"):
        la, rb = left[key], right[key]
        if len(la) != len(rb):
            print(f"{key}: {len(la)} vs {len(rb)} entries")
            problems += 1
            continue
        for x, y in zip(la, rb, strict=True):
            if key == "results":
                x, y = _without_added_fields(x, y)
            if x != y:
                if (
                    isinstance(x[-1], dict)
                    and "error" in x[-1]
                    and not (isinstance(y[-1], dict) and "error" in y[-1])
                ):
                    fixed += 1
                    print(f"{key}: {x[:-1]} raised {x[-1]['error'][:100]} before, now gives a result")
                    continue
                problems += 1
                if problems <= 10:
                    print(f"{key} differ:\n  {json.dumps(x)[:400]}\n  {json.dumps(y)[:400]}")
    if fixed:
        print(f"{fixed} input(s) that raised an error before now give a result")
    print("identical" if problems == 0 else f"{problems} difference(s)")
    return 1 if problems else 0


def _pair_features(scorer: Any, encoded: EncodedTexts, claims: EncodedTexts) -> np.ndarray:
    """``compute_pair_features`` as the running tree defines it (model format 2 added the wording scores)."""
    if "wording_scores" in inspect.signature(compute_pair_features).parameters:
        wording = scorer.stance_model.wording_scores(encoded.word)
        return compute_pair_features(scorer.encoder, encoded, claims, wording)
    return compute_pair_features(scorer.encoder, encoded, claims)


def check(rev: str, files: tuple[str, ...], workdir: Path, substitutes: dict[str, Path] | None = None) -> int:
    """Dump with ``files`` as they were at git ``rev`` over the current tree, dump as now, compare.

    The baseline is a copy of the current ``service/`` package with only ``files``
    taken from ``rev``, so concurrent changes to other modules affect both sides alike.
    ``substitutes`` maps further repository paths to files to use in the baseline
    instead (e.g. a module that someone else changed too, with only the speed
    work reverted).
    """
    base = baseline_tree(rev, files, workdir / "baseline-tree")
    for path, replacement in (substitutes or {}).items():
        (base / path).write_bytes(replacement.read_bytes())
    before, after = workdir / "before.json", workdir / "after.json"
    for tree, out in ((base, before), (REPO, after)):
        env = dict(os.environ, PYTHONPATH=str(tree))
        subprocess.run([sys.executable, __file__, "dump", str(out)], env=env, check=True, cwd=workdir)
    print(f"baseline: {', '.join(files)} at {rev}; current: working tree")
    return compare(before, after)


def main() -> int:
    """Command line: ``dump OUT``, ``compare A B`` or ``check [--rev REV]``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    k = sub.add_parser("check", help="dump at REV (optimised files only) and now, then compare")
    k.add_argument("--rev", default="HEAD")
    k.add_argument("--files", nargs="+", default=list(OPTIMISED_FILES))
    k.add_argument("--workdir", type=Path, default=None)
    k.add_argument(
        "--baseline-file",
        action="append",
        default=[],
        metavar="PATH=FILE",
        help="use FILE as the baseline's PATH (e.g. service/domain/scorer.py=/tmp/old_scorer.py)",
    )
    args = parser.parse_args()
    if args.command == "check":
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="equivalence-"))
        workdir.mkdir(parents=True, exist_ok=True)
        substitutes = {}
        for item in args.baseline_file:
            path, _, file = item.partition("=")
            substitutes[path] = Path(file)
        return check(args.rev, tuple(args.files), workdir, substitutes)
    if args.command == "dump":
        dump(args.out)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
