"""Hashed character n-gram counts as scikit-learn's ``HashingVectorizer(analyzer="char_wb")``
computes them, with array operations (MurmurHash3 in numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _murmurhash3_32(words: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """MurmurHash3 (x86, 32-bit, seed 0) of the ``length``-byte strings at byte offsets ``starts``, as int32.

    ``words[i]`` holds the four bytes at offset ``i`` as a little-endian uint32
    (the buffer is padded, so every offset has one). This is the hash
    scikit-learn's FeatureHasher applies to the UTF-8 bytes of each feature.
    """
    h = np.zeros(len(starts), dtype=np.uint32)
    n_blocks = length // 4
    for b in range(n_blocks):
        k = _rotl(words[starts + 4 * b] * _C1, 15) * _C2
        h = _rotl(h ^ k, 13) * np.uint32(5) + np.uint32(0xE6546B64)
    tail = length & 3
    if tail:
        k = words[starts + 4 * n_blocks] & np.uint32((1 << (8 * tail)) - 1)
        h ^= _rotl(k * _C1, 15) * _C2
    h ^= np.uint32(length)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h.view(np.int32)


def hashed_char_wb_counts(
    texts: Sequence[str],
    min_n: int,
    max_n: int,
    n_features: int,
    *,
    rows: np.ndarray | None = None,
    n_rows: int | None = None,
) -> sp.csr_matrix:
    """Counts of hashed ``char_wb`` n-grams: ``HashingVectorizer(analyzer="char_wb",
    ngram_range=(min_n, max_n), n_features=n_features, alternate_sign=False, norm=None,
    lowercase=True).transform(texts)``, computed with array operations instead of one
    Python string per n-gram.

    As scikit-learn does: lower-case, split on whitespace, pad each word with a
    space on both sides, take every n-gram of ``min_n`` to ``max_n`` characters
    inside a padded word (a padded word shorter than ``min_n`` counts once,
    whole), hash its UTF-8 bytes with MurmurHash3 and take ``|h| % n_features``.
    The result is in canonical form (sorted indices, summed counts), as
    scikit-learn's. Raises ``UnicodeEncodeError`` for text with lone surrogates.

    ``rows`` (non-decreasing, one per text) sums texts into ``n_rows`` output
    rows: the counts of sentences, summed by the text that holds them, without a
    sparse product over all ``n_features`` columns.
    """
    n_texts = len(texts)
    padded = [" " + "  ".join(parts) + " " if (parts := t.lower().split()) else "" for t in texts]
    lengths = np.fromiter((len(p) for p in padded), dtype=np.int64, count=n_texts)
    owner = np.arange(n_texts, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    n_texts = n_texts if n_rows is None else n_rows
    # The output row of every character of the joined texts: a look-up, not a search.
    row_of = np.repeat(owner, lengths)
    joined = "".join(padded)
    encoded = joined.encode("utf-8")
    raw = np.frombuffer(encoded, dtype=np.uint8)
    n_chars, n_bytes = len(joined), len(encoded)
    ascii_only = n_bytes == n_chars
    if ascii_only:  # one byte per character
        byte_of = np.arange(n_chars + 1, dtype=np.int64)
    else:
        byte_of = np.empty(n_chars + 1, dtype=np.int64)
        byte_of[:-1] = np.flatnonzero((raw & 0xC0) != 0x80)
        byte_of[-1] = n_bytes
    # The four bytes at each offset as a little-endian uint32 (zero-padded at the end).
    buffer = np.zeros(n_bytes + 3, dtype=np.uint32)
    buffer[:n_bytes] = raw
    words = buffer[:-3] | (buffer[1:-2] << 8) | (buffer[2:-1] << 16) | (buffer[3:] << 24)
    words = np.concatenate([words, np.zeros(3, dtype=np.uint32)])  # offsets up to n_bytes + 2
    # Every character is inside one padded word " w "; its spaces come in pairs (start, end).
    is_space = raw[byte_of[:-1]] == 0x20
    spaces = np.flatnonzero(is_space)
    word_start, word_end = spaces[0::2], spaces[1::2]
    starts_here = np.zeros(n_chars, dtype=np.int64)
    starts_here[word_start] = 1
    last_char = word_end[np.cumsum(starts_here) - 1]  # last character of each character's word
    positions = np.arange(n_chars, dtype=np.int64)

    # (n-gram start characters, their length in characters) per group.
    groups: list[tuple[np.ndarray, np.ndarray | int]] = []
    for n in range(min_n, max_n + 1):
        groups.append((positions[positions + n - 1 <= last_char], n))
    short = word_end - word_start + 1 < min_n  # padded words shorter than min_n count once, whole
    if short.any():
        groups.append((word_start[short], (word_end - word_start + 1)[short]))

    key_parts: list[np.ndarray] = []
    for first, n_chars_each in groups:
        if len(first) == 0:
            continue
        byte_start = byte_of[first]
        if ascii_only and isinstance(n_chars_each, int):
            by_length = [(n_chars_each, np.arange(len(first)))]
        else:
            byte_length = byte_of[first + n_chars_each] - byte_start
            by_length = [
                (int(length), np.flatnonzero(byte_length == length))
                for length in np.flatnonzero(np.bincount(byte_length))
            ]
        hashes = np.empty(len(first), dtype=np.int32)
        for length, chosen in by_length:
            hashes[chosen] = _murmurhash3_32(words, byte_start[chosen], length)
        wide = hashes.astype(np.int64)
        index = np.abs(wide) % n_features
        index[wide == -(2**31)] = (2**31 - 1 - (n_features - 1)) % n_features
        row = row_of[first]
        key_parts.append(row * n_features + index)

    keys = np.concatenate(key_parts) if key_parts else np.zeros(0, dtype=np.int64)
    if n_texts * n_features < 2**31:
        keys = keys.astype(np.int32)  # sorts faster
    keys.sort()
    first_of_run = np.empty(len(keys), dtype=bool)
    if len(keys):
        first_of_run[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first_of_run[1:])
    run_start = np.flatnonzero(first_of_run)
    counts = np.diff(np.append(run_start, len(keys)))
    unique_keys = keys[run_start].astype(np.int64)
    indptr = np.zeros(n_texts + 1, dtype=np.int32)
    np.cumsum(np.bincount(unique_keys // n_features, minlength=n_texts), out=indptr[1:])
    return sp.csr_matrix(
        (counts.astype(np.float64), (unique_keys % n_features).astype(np.int32), indptr),
        shape=(n_texts, n_features),
    )
