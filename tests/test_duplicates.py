"""Exact and near duplicates (issue 20): planted copies are found within and across splits,
distinct images are not, ``--dedupe`` drops exactly the planted train copies, and the hashes
are cached."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import ferkit.data.decode as decode_module
import ferkit.data.duplicates as duplicates
from ferkit.cli import app
from ferkit.data import load_dataset
from ferkit.data.duplicates import (
    NEAR_SIMILARITY,
    NEAR_THRESHOLD,
    compute_hashes,
    dataset_duplicates,
    perceptual_hashes,
    similarity,
)

runner = CliRunner()
SIDE = 32
CLASSES = ("angry", "happy", "sad")


def smooth_image(seed: int, side: int = SIDE) -> np.ndarray:
    """A distinct gray image with face-like coarse structure: a random 6x6 field, upsampled."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.uniform(30, 225, (6, 6)).astype(np.uint8))
    return np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC))


def _save(image: np.ndarray, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **kw)
    return path


def _brighter(image: np.ndarray, by: int) -> np.ndarray:
    return np.clip(image.astype(int) + by, 0, 255).astype(np.uint8)


def planted_dataset(root: Path) -> tuple[Path, dict[str, list[str]]]:
    """train/val/test class folders of distinct images, plus planted copies of train images:
    in val an exact copy (t0), a copy saved at twice the size (t1, under another class) and a
    JPEG-recompressed one
    (t2); in test a brightened one (t3); inside train a darkened copy (t4) and an exact one
    (t5). Returns the root and the planted train files (across splits / within train)."""
    seed = 0
    for split, per_class in (("train", 5), ("val", 2), ("test", 2)):
        for label, name in enumerate(CLASSES):
            for i in range(per_class):
                _save(smooth_image(seed), root / split / name / f"{split}_{label}_{i}.png")
                seed += 1
    train = [root / "train" / CLASSES[k % 3] / f"train_{k % 3}_{k // 3}.png" for k in range(6)]
    pixels = [np.asarray(Image.open(p)) for p in train]
    _save(pixels[0], root / "val" / "angry" / "copy_exact.png")
    big = Image.fromarray(pixels[1]).resize((2 * SIDE, 2 * SIDE), Image.Resampling.BICUBIC)
    _save(np.asarray(big), root / "val" / "sad" / "copy_resized.png")  # labelled otherwise
    _save(pixels[2], root / "val" / "sad" / "copy_jpeg.jpg", quality=70)
    _save(_brighter(pixels[3], 20), root / "test" / "angry" / "copy_bright.png")
    _save(_brighter(pixels[4], -20), root / "train" / "happy" / "copy_dark.png")
    _save(pixels[5], root / "train" / "sad" / "copy_exact.png")
    across = [str(p) for p in train[:4]]
    within = [str(p) for p in train[4:]]
    return root, {"across": across, "within": within}


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    return planted_dataset(tmp_path / "data")


def test_planted_copies_are_found_within_and_across_splits(planted) -> None:
    root, files = planted
    ds = load_dataset(root, progress=False)
    assert ds.image_size == SIDE and ds.color == "gray"
    found = dataset_duplicates(ds)
    summary = found.summary()
    assert (summary["exact_across"], summary["near_across"]) == (1, 3)
    assert (summary["exact_within"], summary["near_within"]) == (1, 1)
    assert summary["by_splits"] == {
        "train": {"exact": 1, "near": 1},
        "train-val": {"exact": 1, "near": 2},
        "train-test": {"exact": 0, "near": 1},
    }
    across = {p.ref_a: p for p in found.pairs if p.across}
    assert sorted(across) == sorted(files["across"])  # nothing distinct is flagged
    assert across[files["across"][0]].ref_b.endswith("copy_exact.png")
    assert across[files["across"][0]].kind == "exact"
    assert across[files["across"][2]].ref_b.endswith("copy_jpeg.jpg")
    within = [{p.ref_a, p.ref_b} for p in found.pairs if not p.across]
    assert sorted(f for f in files["within"] if not any(f in pair for pair in within)) == []
    assert {p.label_a == p.label_b for p in found.pairs} == {False, True}
    assert summary["label_conflicts"] == sum(p.label_a != p.label_b for p in found.pairs)


def test_hashes_ignore_brightness_and_resizing_but_not_other_images() -> None:
    base = np.stack([smooth_image(s) for s in range(40)])[..., None]
    hashes = perceptual_hashes(base)
    assert len(set(hashes.tolist())) == 40
    changed = np.stack([_brighter(im[..., 0], 25) for im in base])[..., None]
    assert np.all(np.bitwise_count(perceptual_hashes(changed) ^ hashes) <= 4)  # some clip at 255
    ours, theirs = compute_hashes(base), compute_hashes(changed)
    assert np.all(similarity(ours.thumb, theirs.thumb) >= NEAR_SIMILARITY)
    # distinct images: far apart in hash space, and their thumbnails are not alike
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    np.fill_diagonal(dist, 64)
    rows, cols = np.nonzero(dist <= NEAR_THRESHOLD)
    assert np.all(similarity(ours.thumb[rows], ours.thumb[cols]) < NEAR_SIMILARITY)
    rgb = np.repeat(base, 3, axis=3)  # the same pixels in rgb: the same hashes
    assert np.array_equal(perceptual_hashes(rgb), hashes)


def test_close_hashes_of_different_images_are_not_near_duplicates(tmp_path: Path) -> None:
    """Centred faces share their coarse layout, so distinct ones can have close hashes (as on
    FER2013): the thumbnail correlation must reject them. Here a fine pattern (7 cycles per
    image, above the 8x8 DCT the hash keeps) is added to a low-contrast image."""
    base = smooth_image(0).astype(float)
    base = 100 + (base - base.min()) / (base.max() - base.min()) * 60
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    pattern = 50 * np.sin(2 * np.pi * 7 * x / SIDE) * np.sin(2 * np.pi * 7 * y / SIDE)
    root = tmp_path / "d"
    _save(base.astype(np.uint8), root / "train" / "happy" / "a.png")
    _save(np.clip(base + pattern, 0, 255).astype(np.uint8), root / "val" / "happy" / "b.png")
    ds = load_dataset(root, progress=False)
    hashes = compute_hashes(np.concatenate([ds.split("train").images, ds.split("val").images]))
    assert np.bitwise_count(hashes.phash[0] ^ hashes.phash[1]) <= NEAR_THRESHOLD
    assert dataset_duplicates(ds).pairs == []
    assert len(dataset_duplicates(ds, min_similarity=0.0).pairs) == 1  # the hash alone would


def test_hashes_are_cached_and_a_second_look_decodes_and_hashes_nothing(
    planted, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = planted
    calls = {"decode": 0, "hash": 0}
    real_decode, real_hash = decode_module.decode_image, duplicates.compute_hashes

    def counting_decode(*args, **kw):
        calls["decode"] += 1
        return real_decode(*args, **kw)

    def counting_hash(images):
        calls["hash"] += 1
        return real_hash(images)

    monkeypatch.setattr(decode_module, "decode_image", counting_decode)
    monkeypatch.setattr(duplicates, "compute_hashes", counting_hash)
    first = dataset_duplicates(load_dataset(root, progress=False))
    assert calls["decode"] > 0 and calls["hash"] == 3
    assert first.from_cache == {"train": False, "val": False, "test": False}
    calls.update(decode=0, hash=0)
    second = dataset_duplicates(load_dataset(root, progress=False))
    assert calls == {"decode": 0, "hash": 0}
    assert second.from_cache == {"train": True, "val": True, "test": True}
    assert second.pairs == first.pairs
    # a changed file changes its split's key: that split is hashed again, the others are not
    changed = next((root / "val" / "happy").glob("val_*.png"))
    _save(smooth_image(999), changed)
    third = dataset_duplicates(load_dataset(root, progress=False))
    assert third.from_cache == {"train": True, "val": False, "test": True}
    assert calls["hash"] == 1


def test_a_damaged_hash_cache_is_only_a_miss(planted, tmp_path: Path) -> None:
    root, _ = planted
    ds = load_dataset(root, progress=False)
    cache = tmp_path / "cache"
    dataset_duplicates(ds, cache_dir=cache)
    entries = sorted((cache / "hashes").iterdir())
    entries[0].write_bytes(b"not an npz")
    entries[1].write_bytes(entries[1].read_bytes()[:100])  # a truncated zip
    entries[2].write_bytes(b"")
    again = dataset_duplicates(ds, cache_dir=cache)
    assert not any(again.from_cache.values()) and again.summary()["near_across"] == 3
    assert all(dataset_duplicates(ds, cache_dir=cache).from_cache.values())  # rewritten


def test_inspect_reports_counts_figure_and_every_pair_in_problems_csv(
    planted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferkit.reports import dataset_figures

    def no_embedding(*_args, **_kw):  # t-SNE takes tens of seconds on a busy machine
        raise ValueError("not drawn in this test")

    monkeypatch.setattr(dataset_figures, "embed", no_embedding)
    root, files = planted
    out = tmp_path / "report"
    result = runner.invoke(app, ["inspect", str(root), "--out", str(out), "--embed-samples", "5"])
    assert result.exit_code == 0, result.stderr
    assert "within splits 1 exact + 1 near pairs; across splits 1 exact + 3 near" in " ".join(
        result.stdout.split()
    )
    assert "--dedupe" in result.stdout
    assert (out / "duplicates.png").stat().st_size > 0
    with (out / "problems.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"].startswith("duplicate-")]
    assert len(rows) == 6
    assert sorted(r["path"] for r in rows if r["kind"] == "duplicate-across-splits") == sorted(
        files["across"]
    )
    assert {r["split"] for r in rows} == {"train", "train+val", "train+test"}
    as_json = runner.invoke(app, ["inspect", str(root), "--json"])
    summary = json.loads(as_json.stdout)
    assert summary["duplicates"]["exact_across"] == 1
    assert summary["problem_counts"]["duplicate-across-splits"] == 4
    off = json.loads(runner.invoke(app, ["inspect", str(root), "--json", "--no-duplicates"]).stdout)
    assert "duplicates" not in off and "duplicate-across-splits" not in off["problem_counts"]


def test_pairs_beyond_the_listing_limit_are_counted_and_said(
    planted, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferkit.reports.inspect import inspect_dataset

    monkeypatch.setattr(duplicates, "MAX_LISTED", 2)
    root, _ = planted
    _, summary = inspect_dataset(root, progress=False)
    counts = summary["duplicates"]
    assert (counts["pairs"], counts["listed"]) == (6, 2)
    assert counts["exact_across"] + counts["near_across"] == 4
    kinds = [w["kind"] for w in summary["warnings"]]
    assert kinds.count("duplicates-not-listed") == 1
    assert kinds.count("duplicate-across-splits") + kinds.count("duplicate-within-split") == 2


def test_svm_dedupe_drops_exactly_the_planted_train_copies(planted, tmp_path: Path) -> None:
    root, files = planted
    out = tmp_path / "run"
    args = ["svm", str(root), "-o", str(out), "--features", "raw", "--margin", "0", "--dedupe"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "dedupe: dropped 4 of 17 train images that duplicate a val/test image" in " ".join(
        result.stderr.split()
    )
    summary = json.loads((out / "train.json").read_text())
    record = summary["dedupe"]
    assert (record["dropped"], record["exact"], record["near"]) == (4, 1, 3)
    assert record["against"] == ["val", "test"]
    assert summary["train_samples"] == 13
    assert set(record["examples"]) == set(files["across"])
    card = json.loads((out / "model.json").read_text())
    assert card["dedupe"]["dropped"] == 4
    plain = runner.invoke(app, ["svm", str(root), "-o", str(tmp_path / "p"), "--features", "raw"])
    assert "dedupe" not in plain.stderr
    assert "dedupe" not in json.loads((tmp_path / "p" / "train.json").read_text())


def test_train_dedupe_drops_the_copies_of_val_and_test(planted) -> None:
    from ferkit.training.config import TrainConfig
    from ferkit.training.deep import _card, prepare_data

    root, files = planted
    cfg = TrainConfig(batch_size=2, balance="none", dedupe=True)
    prepared = prepare_data(root, cfg, progress=False)
    record = prepared.info["dedupe"]
    assert record["dropped"] == 4 and set(record["examples"]) == set(files["across"])
    assert prepared.info["train_samples"] == 13 and len(prepared.x_train) == 13
    card = _card(Path("run"), cfg, prepared)
    assert card["dedupe"]["dropped"] == 4 and card["training"]["dedupe"] is True
    kept = prepare_data(root, TrainConfig(batch_size=2, balance="none"), progress=False)
    assert kept.info["train_samples"] == 17 and "dedupe" not in kept.info


def test_dedupe_against_a_held_out_validation(tmp_path: Path) -> None:
    """No val split: the copy inside train is held out or kept; with the seed it stays on one
    side only (train or the 10% held out), never on both."""
    from ferkit.data.balance import stratified_split
    from ferkit.data.duplicates import dedupe_train

    root = tmp_path / "d"
    for k in range(30):
        _save(smooth_image(k), root / "train" / CLASSES[k % 3] / f"{k}.png")
    for k in range(10):
        _save(smooth_image(k), root / "train" / CLASSES[k % 3] / f"copy_{k}.png")
    ds = load_dataset(root, progress=False)
    train = ds.split("train")
    keep, held = stratified_split(train.labels, 0.1, seed=0)
    kept, record = dedupe_train(ds, train.subset(keep), train.subset(held))
    held_stems = {Path(r).stem.removeprefix("copy_") for r in train.subset(held).refs}
    leaked = [r for r in kept.refs if Path(r).stem.removeprefix("copy_") in held_stems]
    assert not leaked and record["against"] == ["train"]
    assert record["dropped"] == sum(
        Path(r).stem.removeprefix("copy_") in held_stems for r in train.subset(keep).refs
    )
    assert record["dropped"] > 0


def test_study_data_stage_records_duplicates_and_dedupes(planted, tmp_path: Path) -> None:
    from ferkit.study import StudyConfig
    from ferkit.study.pipeline import Study

    root, _ = planted
    base = dict(data=root, quick=True, features=[], models=[], happy_sad=False)
    plain = Study(StudyConfig(out=tmp_path / "plain", **base), log=lambda _: None)
    plain.stage_data()
    data = plain.records["data"]["result"]
    assert data["duplicates"]["dropped"] == 4 and "deduped" not in data
    assert not data["copied"]
    logged: list[str] = []
    cfg = StudyConfig(out=tmp_path / "dedupe", dedupe=True, **base)
    assert "--dedupe" in cfg.command() and cfg.describe()["dedupe"]
    study = Study(cfg, log=logged.append)
    study.stage_data()
    data = study.records["data"]["result"]
    assert data["deduped"] == 4 and data["copied"]
    assert sum(data["train_counts"].values()) == 13
    assert len(list((tmp_path / "dedupe" / "data" / "dataset" / "train").rglob("*.png"))) == 13
    assert any("dedupe: dropped 4 of 17 train images" in line for line in logged)
