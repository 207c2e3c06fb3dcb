"""Small word lists that signal how a text positions itself towards a claim.

They were written for this project from general English usage (words that
deny, hedge, assert or negate); the stance model learns how much each list
counts. All entries are lower-case tokens as :func:`service.domain.text.tokenize`
produces them (so "didn't" appears as "didn").
"""

from __future__ import annotations

__all__ = [
    "ASSERTING",
    "HEDGING",
    "LEXICONS",
    "NEGATING",
    "REFUTING",
]

REFUTING: frozenset[str] = frozenset(
    """
    fake fakes faked fraud fraudulent hoax hoaxes false falsely deny denies denied
    denying denial doubt doubts doubtful bogus debunk debunks debunked debunking
    prank pranks retract retracts retracted retraction untrue misleading myth myths
    lie lies lying liar fabricated fabrication fabricating incorrect wrong wrongly
    baseless unfounded refute refutes refuted refuting dismiss dismisses dismissed
    reject rejects rejected rejecting contrary disproved disprove satire satirical
    scam nonsense rubbish erroneous mistaken inaccurate falsehood ridiculous absurd
    disputed dispute disputes contradict contradicts contradicted
    """.split()
)

HEDGING: frozenset[str] = frozenset(
    """
    reportedly allegedly alleged alleges allege claims claimed claim claiming
    according rumor rumors rumour rumours rumored rumoured unconfirmed unverified
    purportedly purported apparently may might could possibly possible perhaps
    suggests suggest suggested seems seem appears appear speculation speculated
    speculate reports reported report sources source said says believed unclear
    uncertain likely unlikely supposedly question questions whether if
    """.split()
)

ASSERTING: frozenset[str] = frozenset(
    """
    confirmed confirms confirm confirming official officially announced announces
    verified verify revealed reveals shows showed proves proved proof indeed true
    fact facts evidence certain clearly definitely undoubtedly agreed agrees agree
    support supports supported backs backed endorse endorses endorsed
    """.split()
)

NEGATING: frozenset[str] = frozenset(
    """
    not no never none nobody nothing neither nor without cannot cant didn doesn isn
    wasn aren don won couldn shouldn hasn haven weren wouldn hadn ain nowhere
    """.split()
)

LEXICONS: dict[str, frozenset[str]] = {
    "refuting": REFUTING,
    "hedging": HEDGING,
    "asserting": ASSERTING,
    "negating": NEGATING,
}
