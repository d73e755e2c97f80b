"""The decoded-pixel cache: a hit returns the same arrays, any change is a miss."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import write_image
from ferkit.data import dataset as dataset_module
from ferkit.data import decode, load_dataset


def test_second_load_comes_from_cache(yolo_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset(yolo_dataset)
    assert first.cached == {"train": False, "valid": False}

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached load must not decode")

    monkeypatch.setattr(decode, "decode_files", no_decoding)
    second = load_dataset(yolo_dataset)
    assert second.cached == {"train": True, "valid": True}
    for name in first.splits:
        assert np.array_equal(first.splits[name].images, second.splits[name].images)
        assert np.array_equal(first.splits[name].labels, second.splits[name].labels)
        assert first.splits[name].refs == second.splits[name].refs


def test_changed_file_or_options_miss_the_cache(yolo_dataset: Path) -> None:
    load_dataset(yolo_dataset)
    path = yolo_dataset / "train/images/train_0_0.png"
    write_image(path, 2, 99)  # different content
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    again = load_dataset(yolo_dataset)
    assert again.cached == {"train": False, "valid": True}
    assert load_dataset(yolo_dataset, image_size=16).cached == {"train": False, "valid": False}
    assert load_dataset(yolo_dataset, color="gray").cached == {"train": False, "valid": False}


def test_label_change_needs_no_redecode_but_is_seen(yolo_dataset: Path) -> None:
    load_dataset(yolo_dataset)
    (yolo_dataset / "train/labels/train_0_0.txt").write_text("2 0.5 0.5 1 1\n")
    ds = load_dataset(yolo_dataset)
    assert ds.cached["train"] is True
    assert ds.split("train").counts() == {"Anger": 3, "Happy": 4, "Sad": 5}


def test_cache_disabled_writes_nothing(yolo_dataset: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    load_dataset(yolo_dataset, cache=False, cache_dir=cache_dir)
    assert not cache_dir.exists()
    load_dataset(yolo_dataset, cache_dir=cache_dir)
    assert len(list((cache_dir / "decoded").glob("*.npy"))) == 2
    assert not list((cache_dir / "decoded").glob("*.tmp"))  # atomic writes leave no temp


def test_damaged_cache_is_a_miss(yolo_dataset: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    first = load_dataset(yolo_dataset, cache_dir=cache_dir)
    for meta in (cache_dir / "decoded").glob("*.json"):
        meta.write_text("{not json")
    again = load_dataset(yolo_dataset, cache_dir=cache_dir)
    assert again.cached == {"train": False, "valid": False}
    assert np.array_equal(first.split("train").images, again.split("train").images)


def test_parallel_decode_keeps_order(tmp_path: Path) -> None:
    paths = [str(write_image(tmp_path / f"{i:03d}.png", i % 3, i)) for i in range(600)]
    (tmp_path / "bad.png").write_bytes(b"x")
    paths.insert(300, str(tmp_path / "bad.png"))
    serial = decode.decode_files(paths, 16, "rgb", 10**7, workers=1, progress=False)
    threaded = decode.decode_files(paths, 16, "rgb", 10**7, workers=2, progress=False)
    assert np.array_equal(serial.images, threaded.images)
    assert threaded.failed == [(300, "corrupt-image", threaded.failed[0][2])]
    assert threaded.ok.tolist() == [i for i in range(601) if i != 300]


def test_load_uses_default_cache_dir(yolo_dataset: Path) -> None:
    load_dataset(yolo_dataset)
    folder = dataset_module.default_cache_dir() / "decoded"
    assert folder.is_dir() and os.environ["FERKIT_CACHE_DIR"] in str(folder)


def test_atomic_writes_get_the_mode_a_plain_open_would(tmp_path: Path) -> None:
    import stat

    from ferkit import io

    io.write_text(tmp_path / "atomic.txt", "x")
    with open(tmp_path / "plain.txt", "w") as fh:
        fh.write("x")
    mode = stat.S_IMODE(os.stat(tmp_path / "atomic.txt").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode)
    if not io._UMASK & stat.S_IRGRP:  # the usual 022 umask: readable by the group, not 0600
        assert mode & stat.S_IRGRP
