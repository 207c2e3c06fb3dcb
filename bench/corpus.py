"""Deterministic English news-like texts for benchmarks.

Texts are assembled from a small grammar of varied sentences (several topics,
some on the reference's subject, some not, with negations and hedges), never
copied from the reference itself. The same ``seed`` always gives the same texts,
so the service and the MiniLM peer see identical inputs.
"""

from __future__ import annotations

import random

_SUBJECTS = (
    "NATO",
    "Russia",
    "China",
    "The European Union",
    "Washington",
    "Moscow",
    "Beijing",
    "The Kremlin",
    "The foreign minister",
    "A senior diplomat",
    "The central bank",
    "The city council",
    "Regional leaders",
    "The opposition party",
    "Analysts in Brussels",
    "The defence ministry",
    "Farmers in the south",
    "The Shanghai Cooperation Organization",
    "The prime minister",
    "Local officials",
    "The health agency",
    "Investors",
    "The United Nations",
    "Energy companies",
    "Researchers at the university",
)
_VERBS = (
    "warned that",
    "said that",
    "denied that",
    "insisted that",
    "argued that",
    "acknowledged that",
    "rejected claims that",
    "confirmed that",
    "doubted that",
    "suggested that",
    "reported that",
    "announced that",
)
_CLAUSES = (
    "the expansion of the alliance threatens regional security",
    "a new security architecture for Eurasia is needed",
    "talks on arms control will resume next month",
    "the sanctions have not weakened the economy",
    "military exercises near the border will continue",
    "the crisis could escalate into a direct confrontation",
    "the old framework of indivisible security no longer works",
    "dialogue between the major powers is the only way forward",
    "the budget deficit will shrink by the end of the year",
    "inflation is falling faster than expected",
    "the new hospital will open in the spring",
    "grain exports rose sharply after the harvest",
    "cyber attacks on public infrastructure are increasing",
    "media campaigns are being used to influence voters",
    "the trade agreement will not be signed this year",
    "interest rates are unlikely to change",
    "the bridge project is behind schedule",
    "there is no evidence of nuclear escalation",
    "the summit produced no concrete results",
    "the consultations are not aimed at forming a military alliance",
    "rainfall this season was well below average",
    "unemployment reached its lowest level in a decade",
    "the railway line will be extended to the port",
    "the election results will be contested in court",
)
_TAILS = (
    "",
    "",
    " by {n} percent",
    ", affecting {n} thousand people",
    " before the {y} deadline",
    " in a report of {n} pages",
    " on Tuesday",
    " in a statement",
    " according to officials",
    " during a press conference",
    ", citing unnamed sources",
    " after weeks of negotiations",
    " despite strong criticism",
    " in an interview with local media",
)
_OPENERS = (
    "",
    "",
    "However, ",
    "Meanwhile, ",
    "In response, ",
    "Earlier this week, ",
    "At the same time, ",
    "Critics say ",
)


def sentence(rng: random.Random) -> str:
    """One news-like sentence."""
    opener = rng.choice(_OPENERS)
    subject = rng.choice(_SUBJECTS)
    if (
        opener
        and subject.split()[0]
        in {"The", "A", "Regional", "Local", "Analysts", "Farmers", "Investors", "Energy", "Researchers"}
        and "Shanghai" not in subject
    ):
        subject = subject[0].lower() + subject[1:]
    tail = rng.choice(_TAILS).format(n=rng.randint(2, 95), y=rng.randint(2019, 2031))
    body = f"{opener}{subject} {rng.choice(_VERBS)} {rng.choice(_CLAUSES)}{tail}."
    return body[0].upper() + body[1:]


def make_text(rng: random.Random, chars: int) -> str:
    """A text of about ``chars`` characters (whole sentences; paragraphs every few sentences)."""
    parts: list[str] = []
    length = 0
    while True:
        s = sentence(rng)
        sep = "" if not parts else ("\n\n" if len(parts) % 5 == 0 else " ")
        # Add a sentence only while it brings the length closer to the target.
        if parts and length + (len(sep) + len(s)) / 2 > chars:
            return "".join(parts)
        parts.append(sep + s)
        length += len(sep) + len(s)


def make_texts(n: int, chars: int, seed: int = 0) -> list[str]:
    """``n`` different texts of about ``chars`` characters each."""
    rng = random.Random(f"{seed}-{chars}")
    return [make_text(rng, chars) for _ in range(n)]
