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
    weighted = (weighted_owner @ sentence_rows).tocsr()
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
