"""Exact and near-duplicate images within and across splits, and ``--dedupe``.

A model scored on images it was trained on is scored too high, and nothing in the numbers says
so: FER2013 ships near-identical faces in its train and val splits. This module finds them.

* **Exact** duplicates have identical decoded pixels (a BLAKE2b digest per image, at the size
  and colour the dataset is loaded at: the pixels every model sees).
* **Near** duplicates pass two tests. Their 64-bit perceptual hashes (pHash: the signs, against
  their median, of the 8x8 lowest frequencies of the DCT of the gray image area-resized to
  32x32) are at most :data:`NEAR_THRESHOLD` bits apart; and their 16x16 gray thumbnails
  correlate at :data:`NEAR_SIMILARITY` or more (Pearson). Both ignore brightness and contrast and
  barely move under resizing or JPEG recompression. The hash alone is not enough on faces:
  centred faces share their coarse layout, and at distances of 6-10 bits distinct people were
  as common as copies on FER2013; the correlation tells them apart. Both defaults were measured
  on planted copies and on FER2013 (``benchmarks/duplicates.py``; docs/BENCHMARKS.md).

The search compares every pair's hashes (XOR and popcount, vectorised in blocks): the 380
million pairs of FER2013's train split take about two seconds, with no index to build or trust.
Each split's hashes, digests and thumbnails are cached next to the decoded pixels
(``<cache>/hashes``), keyed by the decode cache's own key (every file's path, size and mtime,
and the decode options), so a second look at an unchanged dataset computes nothing.
"""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferkit import io
from ferkit.data.problems import Problem

if TYPE_CHECKING:  # dataset imports nothing from here; the annotations only need the names
    from ferkit.data.dataset import Dataset, Split

HASH_VERSION = 1
# pHash distance (bits of 64) up to which two images are compared further: planted resized,
# recompressed and +-25-brightness copies of FER2013 faces fall at 0-2 (99%), 1-px shifts at
# a median of 8; distinct faces often come within 6-10 (docs/BENCHMARKS.md, "Near duplicates").
NEAR_THRESHOLD = 10
# thumbnail correlation from which a close pair is a near duplicate: planted copies score 0.99+
# (1-px shifts 0.94 median); FER2013 train/val pairs under 0.92 were mostly distinct people.
NEAR_SIMILARITY = 0.92
_SIDE = 32  # the gray image is area-resized to this side before the DCT
_LOW = 8  # the 8x8 lowest frequencies make the 64 bits
_THUMB = 16  # side of the thumbnails that confirm near pairs
# pairs kept as objects for listing (every pair is counted): a folder of 10,000 identical
# frames makes 50 million pairs, which must not become 50 million Python objects
MAX_LISTED = 100_000
_BLOCK = 64  # query rows compared at once (measured fastest: 64 x 30k fits the caches)


@dataclass
class Hashes:
    """Per image of a split: its 64-bit perceptual hash, a 16-byte digest of its pixels, and a
    16x16 gray thumbnail (uint8) that confirms near pairs."""

    phash: np.ndarray  # (N,) uint64
    digest: np.ndarray  # (N, 16) uint8
    thumb: np.ndarray  # (N, 256) uint8

    def __len__(self) -> int:
        return int(self.phash.shape[0])

    def subset(self, indices: np.ndarray) -> Hashes:
        return Hashes(self.phash[indices], self.digest[indices], self.thumb[indices])

    def valid(self, n: int) -> bool:
        """True when these are hashes of ``n`` images as this version makes them (a cache
        entry of another length or shape is a miss, not an error)."""
        shapes = (self.phash.shape, self.digest.shape, self.thumb.shape)
        return shapes == ((n,), (n, 16), (n, _THUMB * _THUMB)) and self.phash.dtype == np.uint64


@dataclass(frozen=True)
class Pair:
    """Two images found alike: where each is (split, index into the split, ref), how far apart
    their hashes are, and whether their pixels are identical (``exact``) or only close."""

    kind: str  # "exact" or "near"
    split_a: str
    index_a: int
    ref_a: str
    split_b: str
    index_b: int
    ref_b: str
    distance: int
    label_a: str = ""
    label_b: str = ""

    @property
    def across(self) -> bool:
        return self.split_a != self.split_b

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "a": {"split": self.split_a, "index": self.index_a, "ref": self.ref_a,
                  "label": self.label_a},
            "b": {"split": self.split_b, "index": self.index_b, "ref": self.ref_b,
                  "label": self.label_b},
            "distance": self.distance,
        }  # fmt: skip


@dataclass
class Duplicates:
    """The pairs found (the first :data:`MAX_LISTED`) and the counts of all of them, by split
    (``train``) or pair of splits (``train-val``): exact, near, and labelled differently."""

    threshold: int
    similarity: float
    pairs: list[Pair] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    from_cache: dict[str, bool] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, kind: str, across: bool) -> int:
        return sum(c[kind] for key, c in self.counts.items() if ("-" in key) == across)

    def summary(self) -> dict[str, Any]:
        """Pair counts by kind and place (within a split, across splits), per split or pair of
        splits, how many pairs are labelled differently and how many are listed."""
        total = sum(c["exact"] + c["near"] for c in self.counts.values())
        return {
            "threshold": self.threshold,
            "similarity": self.similarity,
            "exact_within": self.count("exact", False),
            "near_within": self.count("near", False),
            "exact_across": self.count("exact", True),
            "near_across": self.count("near", True),
            "label_conflicts": sum(c["conflicts"] for c in self.counts.values()),
            "by_splits": {
                key: {"exact": c["exact"], "near": c["near"]} for key, c in self.counts.items()
            },
            "listed": len(self.pairs),
            "pairs": total,
            "seconds": round(self.seconds, 2),
            "from_cache": self.from_cache,
        }


# -- hashing ---------------------------------------------------------------------------------


def _area_matrix(n: int, side: int = _SIDE) -> np.ndarray:
    """(side, n) weights that average ``n`` pixels into ``side`` (box filter by overlap), so
    resizing is a matrix product, exact for any ratio and cheap for a whole batch."""
    edges = np.linspace(0.0, n, side + 1)
    left, right = edges[:-1, None], edges[1:, None]
    pix = np.arange(n, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(right, pix + 1) - np.maximum(left, pix), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def _dct_matrix(side: int = _SIDE, low: int = _LOW) -> np.ndarray:
    """The first ``low`` rows of the orthonormal DCT-II of length ``side``."""
    k = np.arange(low)[:, None]
    x = np.arange(side)[None, :]
    basis = np.cos(np.pi * (2 * x + 1) * k / (2 * side)) * np.sqrt(2.0 / side)
    basis[0] /= np.sqrt(2.0)
    return basis


def _gray_blocks(images: np.ndarray, block: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
    """(start, float32 gray images) for consecutive blocks of uint8 (N, H, W, C) images."""
    for start in range(0, len(images), block):
        chunk = images[start : start + block]
        gray = chunk[..., 0] if chunk.shape[-1] == 1 else chunk.mean(axis=-1, dtype=np.float32)
        yield start, gray.astype(np.float32)


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """64-bit pHash of each uint8 (N, H, W, C) image, as (N,) uint64.

    Resizing and the DCT are linear, so both are folded into one (8, H) and one (8, W) matrix:
    the 64 coefficients of a batch are two matrix products of its gray images.
    """
    n, h, w = images.shape[:3]
    rows = (_dct_matrix() @ _area_matrix(h)).astype(np.float32)
    cols = (_dct_matrix() @ _area_matrix(w)).astype(np.float32)
    out = np.empty(n, dtype=np.uint64)
    for start, gray in _gray_blocks(images):
        coeffs = (rows @ gray @ cols.T).reshape(-1, _LOW * _LOW)
        bits = coeffs > np.median(coeffs, axis=1, keepdims=True)
        out[start : start + len(gray)] = np.packbits(bits, axis=1).view(">u8")[:, 0]
    return out


def thumbnails(images: np.ndarray) -> np.ndarray:
    """16x16 area-resized gray thumbnails of uint8 (N, H, W, C) images, as (N, 256) uint8."""
    n, h, w = images.shape[:3]
    rows = _area_matrix(h, _THUMB).astype(np.float32)
    cols = _area_matrix(w, _THUMB).astype(np.float32)
    out = np.empty((n, _THUMB * _THUMB), dtype=np.uint8)
    for start, gray in _gray_blocks(images):
        small = (rows @ gray @ cols.T).reshape(len(gray), -1)
        out[start : start + len(gray)] = np.clip(np.rint(small), 0, 255)
    return out


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of paired thumbnail rows (0 where either is flat)."""
    x = a.astype(np.float32) - a.mean(axis=1, keepdims=True, dtype=np.float32)
    y = b.astype(np.float32) - b.mean(axis=1, keepdims=True, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    return np.where(norms > 0, np.sum(x * y, axis=1) / np.maximum(norms, 1e-12), 0.0)


def pixel_digests(images: np.ndarray) -> np.ndarray:
    """A 16-byte BLAKE2b digest of each image's pixels, as (N, 16) uint8."""
    digests = np.empty((len(images), 16), dtype=np.uint8)
    for i, image in enumerate(images):
        raw = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()
        digests[i] = np.frombuffer(raw, dtype=np.uint8)
    return digests


def compute_hashes(images: np.ndarray) -> Hashes:
    return Hashes(perceptual_hashes(images), pixel_digests(images), thumbnails(images))


def _cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / "hashes" / f"{key}-v{HASH_VERSION}.npz"


def cached_hashes(
    images: np.ndarray, key: str | None, cache_dir: Path | None
) -> tuple[Hashes, bool]:
    """The hashes of ``images`` from the cache under ``key`` (the split's decode-cache key)
    when stored and of the right length, else computed and stored; and whether they were read.
    A damaged or unwritable cache is only a miss: the hashes are computed as without one."""
    if key is None or cache_dir is None:
        return compute_hashes(images), False
    path = _cache_file(Path(cache_dir), key)
    try:
        with np.load(path, allow_pickle=False) as stored:
            hashes = Hashes(stored["phash"], stored["digest"], stored["thumb"])
        if hashes.valid(len(images)):
            return hashes, True
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass  # a damaged entry (a truncated write, another file) is a miss; it is rewritten
    hashes = compute_hashes(images)
    try:
        with io.atomic_path(path, suffix=".tmp.npz") as tmp:
            np.savez(tmp, phash=hashes.phash, digest=hashes.digest, thumb=hashes.thumb)
    except OSError:  # io.WriteError included
        pass  # as the decode cache: a read-only cache disk must not fail the check
    return hashes, False


# -- search ----------------------------------------------------------------------------------


def _close_pairs(
    a: np.ndarray, b: np.ndarray, threshold: int, same: bool
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Index pairs (i into ``a``, j into ``b``) whose hashes differ in at most ``threshold``
    bits, with their distances; ``same`` (``a`` is ``b``) keeps each pair once (i < j)."""
    for start in range(0, len(a), _BLOCK):
        rows = a[start : start + _BLOCK]
        first = start if same else 0
        dist = np.bitwise_count(rows[:, None] ^ b[None, first:])
        i, j = np.nonzero(dist <= threshold)
        j = j + first
        if same:
            keep = j > i + start
            i, j = i[keep], j[keep]
        yield i + start, j, dist[i, j - first]


def matches(
    ha: Hashes,
    hb: Hashes,
    threshold: int = NEAR_THRESHOLD,
    min_similarity: float = NEAR_SIMILARITY,
    same: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Blocks of duplicate pairs between ``ha`` and ``hb`` (``same``: they are one split, each
    pair once): indices into each, pHash distances, and whether the pixels are identical. A
    pair is kept when identical, or when within ``threshold`` bits and ``min_similarity``."""
    for i, j, d in _close_pairs(ha.phash, hb.phash, threshold, same):
        exact = np.all(ha.digest[i] == hb.digest[j], axis=1)
        keep = exact | (similarity(ha.thumb[i], hb.thumb[j]) >= min_similarity)
        yield i[keep], j[keep], d[keep], exact[keep]


def _role(name: str) -> int:
    """0 for a train split (or alias), 1 for val, 2 for test, 3 for any other."""
    from ferkit.data.dataset import SPLIT_ALIASES

    roles = list(SPLIT_ALIASES.values())
    return next((k for k, aliases in enumerate(roles) if name.lower() in aliases), len(roles))


def find_duplicates(
    splits: Mapping[str, Split],
    hashes: Mapping[str, Hashes],
    threshold: int = NEAR_THRESHOLD,
    min_similarity: float = NEAR_SIMILARITY,
    limit: int | None = None,
) -> tuple[list[Pair], dict[str, dict[str, int]]]:
    """Every exact or near pair within each split and across each pair of splits: the first
    ``limit`` (None: all) as :class:`Pair`, and the counts of all of them (see
    :class:`Duplicates`).

    ``splits`` maps names to :class:`~ferkit.data.dataset.Split` (for refs and labels) and
    ``hashes`` the same names to their :class:`Hashes`. Pairs across splits name the earlier
    split first, in the order train, val, test, others (``train-val``, ``train-test``).
    """
    names = sorted(splits, key=_role)
    pairs: list[Pair] = []
    counts: dict[str, dict[str, int]] = {}
    for x, name_a in enumerate(names):
        for name_b in names[x:]:
            sa, sb, same = splits[name_a], splits[name_b], name_a == name_b
            key = name_a if same else f"{name_a}-{name_b}"
            tally = {"exact": 0, "near": 0, "conflicts": 0}
            canon_a, canon_b = np.asarray(sa.canonical), np.asarray(sb.canonical)
            found = matches(hashes[name_a], hashes[name_b], threshold, min_similarity, same)
            for i, j, d, exact in found:
                tally["exact"] += int(exact.sum())
                tally["near"] += int((~exact).sum())
                conflict = canon_a[sa.labels[i]] != canon_b[sb.labels[j]]
                tally["conflicts"] += int(conflict.sum())
                room = len(i) if limit is None else max(0, limit - len(pairs))
                pairs += [
                    _pair(sa, sb, int(ii), int(jj), int(dd), bool(ee))
                    for ii, jj, dd, ee in zip(
                        i[:room], j[:room], d[:room], exact[:room], strict=True
                    )
                ]
            if tally["exact"] or tally["near"]:
                counts[key] = tally
    return pairs, counts


def _pair(sa: Split, sb: Split, i: int, j: int, distance: int, exact: bool) -> Pair:
    return Pair(
        "exact" if exact else "near",
        sa.name, i, sa.refs[i], sb.name, j, sb.refs[j], distance,
        sa.canonical[int(sa.labels[i])], sb.canonical[int(sb.labels[j])],
    )  # fmt: skip


def dataset_duplicates(
    ds: Dataset,
    threshold: int = NEAR_THRESHOLD,
    min_similarity: float = NEAR_SIMILARITY,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> Duplicates:
    """:func:`find_duplicates` over every split of a loaded :class:`~ferkit.data.Dataset`,
    hashes cached under the decode cache's keys (``cache_dir`` default: the decode cache's;
    ``cache=False``: computed, not stored)."""
    start = time.perf_counter()
    hashes, hits = {}, {}
    for name in ds.splits:
        hashes[name], hits[name] = _split_hashes(ds, name, cache_dir, cache)
    pairs, counts = find_duplicates(ds.splits, hashes, threshold, min_similarity, MAX_LISTED)
    return Duplicates(threshold, min_similarity, pairs, counts, hits, time.perf_counter() - start)


# -- --dedupe --------------------------------------------------------------------------------


def _split_hashes(
    ds: Dataset, name: str, cache_dir: str | os.PathLike[str] | None, cache: bool = True
) -> tuple[Hashes, bool]:
    from ferkit.data.decode import default_cache_dir

    folder = (Path(cache_dir) if cache_dir else default_cache_dir()) if cache else None
    return cached_hashes(ds.splits[name].images, ds.keys.get(name), folder)


def split_hashes(ds: Dataset, name: str, cache_dir: str | os.PathLike[str] | None = None) -> Hashes:
    """The (cached) hashes of split ``name`` of a loaded dataset, in the split's order."""
    return _split_hashes(ds, name, cache_dir)[0]


def drop_duplicates(
    train: Split,
    others: Sequence[Split],
    threshold: int = NEAR_THRESHOLD,
    min_similarity: float = NEAR_SIMILARITY,
    train_hashes: Hashes | None = None,
    other_hashes: Sequence[Hashes] | None = None,
) -> tuple[Split, dict[str, Any]]:
    """``train`` (a :class:`~ferkit.data.dataset.Split`) without the items that are exact or
    near duplicates of an item of any split in ``others``: what ``--dedupe`` trains on, so no
    validation or test score is earned on an image the model was fitted to. Returns the kept
    split and a record of what was dropped (counts, the splits compared, a few refs)."""
    th = train_hashes if train_hashes is not None else compute_hashes(train.images)
    exact = np.zeros(len(train), dtype=bool)
    near = np.zeros(len(train), dtype=bool)
    for k, other in enumerate(others):
        oh = other_hashes[k] if other_hashes is not None else compute_hashes(other.images)
        for i, _, _, identical in matches(th, oh, threshold, min_similarity):
            exact[i[identical]] = True
            near[i[~identical]] = True
    dropped = np.flatnonzero(exact | near)
    record = {
        "threshold": threshold,
        "similarity": min_similarity,
        "against": [o.name for o in others],
        "train_before": len(train),
        "dropped": len(dropped),
        "exact": int(exact.sum()),
        "near": int((near & ~exact).sum()),
        "examples": [train.refs[i] for i in dropped[:5]],
    }
    return train.subset(np.flatnonzero(~(exact | near))), record


def dedupe_train(
    ds: Dataset,
    train: Split,
    val: Split | None = None,
    threshold: int = NEAR_THRESHOLD,
    min_similarity: float = NEAR_SIMILARITY,
) -> tuple[Split, dict[str, Any]]:
    """``--dedupe`` on a loaded dataset: ``train`` without its duplicates of ``val`` (when
    given: it may be held out of ``train``'s split) and of every other split of ``ds`` (val,
    test), as :func:`drop_duplicates`. Splits as loaded use the hash cache; a held-out part of a
    split (``Split.subset``) is hashed afresh."""

    def hashes(split: Split) -> Hashes:
        whole = ds.splits.get(split.name) is split
        return split_hashes(ds, split.name) if whole else compute_hashes(split.images)

    taken = {train.name} | ({val.name} if val is not None else set())
    others = [
        *([val] if val is not None else []),
        *(s for n, s in ds.splits.items() if n not in taken),
    ]
    others = sorted((o for o in others if len(o)), key=lambda o: _role(o.name))
    return drop_duplicates(
        train, others, threshold, min_similarity, hashes(train), [hashes(o) for o in others]
    )


def dedupe_message(record: dict[str, Any]) -> str:
    """The one line ``--dedupe`` prints: how many train images were dropped, and why."""
    against = "/".join(record["against"]) or "no other split"
    if not record["dropped"]:
        return f"dedupe: no train image duplicates a {against} image"
    return (
        f"dedupe: dropped {record['dropped']:,} of {record['train_before']:,} train images that "
        f"duplicate a {against} image ({record['exact']:,} exact, {record['near']:,} near, "
        f"pHash distance <= {record['threshold']}, similarity >= {record['similarity']})"
    )


def pair_problems(pairs: Sequence[Pair]) -> list[Problem]:
    """A warning per pair, for ``ferkit inspect``'s listing and ``problems.csv`` (pairs across
    splits first): the first image's ref as the path, the other image and the distance in the
    reason."""
    out = []
    for p in sorted(pairs, key=lambda p: not p.across):  # the ones that inflate scores first
        labels = (
            f"labelled {p.label_a} and {p.label_b}"
            if p.label_a != p.label_b
            else (f"both {p.label_a}")
        )
        out.append(
            Problem(
                "duplicate-across-splits" if p.across else "duplicate-within-split",
                p.ref_a,
                f"{p.kind} duplicate (pHash distance {p.distance}) of [{p.split_b}] {p.ref_b}; "
                f"{labels}",
                "warning",
                p.split_a if not p.across else f"{p.split_a}+{p.split_b}",
            )
        )
    return out
