"""Fast exact equivalents of scikit-learn and scipy steps on CSR matrices, for the encoder."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

__all__ = [
    "nonzero_csr",
    "normalize_rows",
    "pair_counts",
    "select_rows",
    "sum_rows",
    "summing_matrix",
    "weighted_shares",
]

# -- fast exact equivalents of scikit-learn steps ----------------------------------


# The helpers below build exactly the matrices scipy's COO conversion, row indexing and
# eliminate_zeros build (same entries in the same storage order), without their per-call overhead,
# which is most of the cost of encoding a single short text.


def weighted_shares(
    weighted_owner: sp.csr_matrix | None, sentence_rows: sp.csr_matrix, counts: sp.csr_matrix
) -> np.ndarray | None:
    """For each entry of ``counts`` (the unweighted sums of ``sentence_rows``), the weighted
    share of its occurrences: its weighted sum over its count, aligned with ``counts.data``.

    ``None`` when nothing is weighted (every share would be 1).
    """
    if weighted_owner is None:
        return None
    if counts.nnz == 0:
        return np.zeros(0)
    weighted = sum_rows(weighted_owner, sentence_rows)
    # Sorted column indices let scipy look each entry up by binary search; unsorted (as the
    # product leaves them) it scans the row for every entry: quadratic in a long text's terms.
    weighted.sort_indices()
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    return np.asarray(weighted[rows, counts.indices], dtype=np.float64).ravel() / counts.data


def pair_counts(rows: np.ndarray, columns: np.ndarray, n_rows: int, n_columns: int) -> sp.csr_matrix:
    """How often each (row, column) pair occurs, as canonical CSR (sorted, summed; float64).

    The matrix ``csr_matrix((ones, (rows, columns)))`` followed by ``sum_duplicates()`` gives.
    """
    keys, counts = np.unique(rows * n_columns + columns, return_counts=True)
    indptr = np.zeros(n_rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(keys // n_columns, minlength=n_rows), out=indptr[1:])
    return sp.csr_matrix(
        (counts.astype(np.float64), (keys % n_columns).astype(np.int32), indptr), shape=(n_rows, n_columns)
    )


COMPACT_MIN_COLUMNS = 4096
"""From this many columns, :func:`sum_rows` multiplies over the used columns only."""


def sum_rows(owner: sp.csr_matrix, rows: sp.csr_matrix) -> sp.csr_matrix:
    """``(owner @ rows).tocsr()``, the same entries in the same storage order, computed over the
    columns ``rows`` uses.

    scipy's sparse product allocates and zero-fills two work arrays as long as the right-hand
    side is wide (2**20 hashed character n-grams: 12 MB); with the service's allocator settings
    (service.http.admission.tune_allocator) each is a fresh mapping, so every product paid for
    page faults on 12 MB, most of the cost of encoding a long text. Relabelling the used columns
    0..k-1 keeps the product's order of work, so the result is identical.
    """
    if rows.shape[1] < COMPACT_MIN_COLUMNS or rows.nnz == 0:
        return (owner @ rows).tocsr()
    used, compact = np.unique(rows.indices, return_inverse=True)
    narrow = sp.csr_matrix(
        (rows.data, compact.astype(rows.indices.dtype), rows.indptr), shape=(rows.shape[0], len(used))
    )
    product = (owner @ narrow).tocsr()
    return sp.csr_matrix(
        (product.data, used[product.indices].astype(product.indices.dtype), product.indptr),
        shape=(owner.shape[0], rows.shape[1]),
    )


def summing_matrix(owner: np.ndarray, n_texts: int, weights: np.ndarray | None = None) -> sp.csr_matrix:
    """(n_texts, len(owner)) with ``weights[s]`` (default 1) at (owner[s], s): sums sentence rows
    into text rows.

    ``owner`` is non-decreasing, so this is in canonical order.
    """
    n_sentences = len(owner)
    indptr = np.zeros(n_texts + 1, dtype=np.int32)
    np.cumsum(np.bincount(owner, minlength=n_texts), out=indptr[1:])
    data = np.ones(n_sentences) if weights is None else np.asarray(weights, dtype=np.float64)
    return sp.csr_matrix((data, np.arange(n_sentences, dtype=np.int32), indptr), shape=(n_texts, n_sentences))


def select_rows(matrix: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """``matrix[keep]`` for a boolean row mask, entries in the same order."""
    row_nnz = np.diff(matrix.indptr)
    entries = np.repeat(keep, row_nnz)
    indptr = np.zeros(int(keep.sum()) + 1, dtype=matrix.indptr.dtype)
    np.cumsum(row_nnz[keep], out=indptr[1:])
    return sp.csr_matrix(
        (matrix.data[entries], matrix.indices[entries], indptr), shape=(len(indptr) - 1, matrix.shape[1])
    )


def nonzero_csr(data: np.ndarray, like: sp.csr_matrix) -> sp.csr_matrix:
    """A new CSR matrix with ``like``'s structure and ``data``, exact zeros dropped.

    What ``m = like.copy(); m.data = data; m.eliminate_zeros()`` gives.
    """
    keep = data != 0
    if keep.all():
        return sp.csr_matrix((data, like.indices.copy(), like.indptr.copy()), shape=like.shape)
    kept_before = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=kept_before[1:])
    indptr = kept_before[like.indptr].astype(like.indptr.dtype)
    return sp.csr_matrix((data[keep], like.indices[keep], indptr), shape=like.shape)


def normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """L2-normalise the rows of ``matrix`` in place; empty rows stay empty.

    The kernel that ``sklearn.preprocessing.normalize`` runs on a CSR matrix,
    without its input validation (which costs more than the work for one text).
    """
    if matrix.dtype != np.float64 or not matrix.data.flags.writeable:
        matrix = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    inplace_csr_row_normalize_l2(matrix)
    return matrix
