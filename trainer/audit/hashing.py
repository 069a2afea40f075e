"""Fingerprints for duplicate search: a 256-bit perceptual hash and the pairs within a
Hamming distance of each other."""

from __future__ import annotations

import numpy as np

# pHash, 256 bits: 64x64 greyscale -> 2-D DCT -> top-left 16x16 (lowest frequencies) -> bit =
# coefficient above the block's median. Robust to re-encoding, resizing and recolouring. The
# common 64-bit variant (8x8 of 32x32) is too coarse for this data: centred products on white
# backgrounds share their lowest frequencies, so it put a battery 4 bits from a keyboard.
HASH_BITS = 256
HASH_SIDE = 16
HASH_SOURCE = 64
# Chosen by looking at the real dataset's pairs (all of them from 17 to 56 bits, a sample
# below): up to 44 every pair is the same photo (re-encoded, rescaled, slightly cropped or
# recoloured). From 46 on, different products shot the same way (another battery, a turntable
# in another colour) mix in with more heavily re-cropped copies, so a higher threshold buys
# recall with false alarms. Unrelated images sit near 128; distinct photos' nearest
# neighbours at 64-100. The borderline picture shows what the threshold leaves out.
DEFAULT_HASH_DISTANCE = 44
# Pairs up to this far above the threshold are kept too, for the borderline picture, so a
# person can check that the threshold does not miss real duplicates.
BORDERLINE_MARGIN = 12

EXACT_HASH_DESCRIPTION = "SHA-256 of the file bytes"
NEAR_HASH_DESCRIPTION = (
    f"pHash, {HASH_BITS} bits: image decoded with desktop.core.preprocessing.load_rgb "
    f"at {HASH_SOURCE}x{HASH_SOURCE}, ITU-R 601 greyscale, 2-D DCT-II, top-left "
    f"{HASH_SIDE}x{HASH_SIDE} coefficients compared with their median"
)

# A pair of images (indices i < j) and the Hamming distance between their hashes.
Pair = tuple[int, int, int]


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: `m @ x @ m.T` is the 2-D DCT of an n x n block."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(HASH_SOURCE)
# ITU-R 601 luma, the weights Pillow's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114])


def phash(rgb: np.ndarray) -> np.ndarray:
    """256-bit perceptual hash (as 256 bools) of a 64x64x3 RGB array."""
    if rgb.shape != (HASH_SOURCE, HASH_SOURCE, 3):
        raise ValueError(f"phash expects a {HASH_SOURCE}x{HASH_SOURCE}x3 array, got {rgb.shape}")
    grey = rgb.astype(np.float64) @ _LUMA
    low = (_DCT @ grey @ _DCT.T)[:HASH_SIDE, :HASH_SIDE]
    return (low > np.median(low)).ravel()


def hamming_pairs(
    hashes: np.ndarray, max_distance: int, block: int = 1024
) -> tuple[list[Pair], np.ndarray]:
    """All pairs (i < j) within `max_distance` bits, and each hash's nearest-neighbour distance.

    Computed in row blocks with a matrix product so memory stays O(block * n) at any size.
    """
    n = len(hashes)
    bits = hashes.astype(np.float32)
    inverse = 1.0 - bits
    pairs: list[Pair] = []
    nearest = np.full(n, HASH_BITS + 1, dtype=np.int64)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        # Differing bits = ones of a against zeros of b plus zeros of a against ones of b.
        dist = np.rint(bits[rows] @ inverse.T + inverse[rows] @ bits.T).astype(np.int64)
        local = np.arange(rows.start, rows.stop)
        dist[np.arange(len(local)), local] = HASH_BITS + 1  # ignore self
        nearest[rows] = dist.min(axis=1)
        ii, jj = np.nonzero(dist <= max_distance)
        for i, j in zip(ii + start, jj, strict=True):
            if i < j:
                pairs.append((int(i), int(j), int(dist[i - start, j])))
    return pairs, nearest
