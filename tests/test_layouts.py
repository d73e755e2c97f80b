"""Each supported layout loads with the right classes, splits, labels and pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_fer_csv, make_folders, make_yolo
from ferkit.data import load_dataset


def test_yolo_layout(yolo_dataset: Path) -> None:
    ds = load_dataset(yolo_dataset)
    assert ds.layout == "yolo"
    assert ds.classes == ["Anger", "Happy", "Sad"]
    assert ds.canonical == ["angry", "happy", "sad"]
    assert set(ds.splits) == {"train", "valid"}
    train = ds.split("train")
    assert len(train) == 12 and train.images.shape == (12, 32, 32, 3)
    assert train.images.dtype == np.uint8
    assert train.counts() == {"Anger": 4, "Happy": 4, "Sad": 4}
    # brightness encodes the class in the fixtures: labels must follow their files
    means = [train.images[train.labels == k].mean() for k in range(3)]
    assert means == sorted(means)
    assert ds.problems == []


def test_val_alias_finds_valid(yolo_dataset: Path) -> None:
    ds = load_dataset(yolo_dataset)
    assert ds.split("val").name == "valid"
    assert ds.split("validation").name == "valid"
    with pytest.raises(KeyError, match="no split 'test'"):
        ds.split("test")


def test_yolo_names_as_dict_and_stale_keys(tmp_path: Path) -> None:
    text = (
        'data: "./YOLO_format"\ntrain: "./train/images"\nval: "./valid/images"\n'
        "nc: 3\nnames:\n  0: Anger\n  1: Happy\n  2: Sad\nnetwork: yolov8n\n"
    )
    ds = load_dataset(make_yolo(tmp_path / "d", yaml_text=text))
    assert ds.classes == ["Anger", "Happy", "Sad"]
    assert ds.problems == []


def test_yolo_yaml_path_given_directly_and_split_folder_paths(tmp_path: Path) -> None:
    text = 'train: train\nval: valid\nnames: ["Anger", "Happy", "Sad"]\n'
    root = make_yolo(tmp_path / "d", yaml_text=text)
    ds = load_dataset(root / "data.yaml")
    assert len(ds.split("train")) == 12 and len(ds.split("valid")) == 12


def test_yolo_roboflow_export_paths(tmp_path: Path) -> None:
    """Roboflow writes ``../train/images`` (relative to a folder above the dataset) and
    keeps the author's ``path:``; Ultralytics reads such a folder, so must ferkit."""
    text = (
        "path: /content/datasets/emotions-3\ntrain: ../train/images\nval: ../valid/images\n"
        'test: ../test/images\nnc: 3\nnames: ["Anger", "Happy", "Sad"]\n'
    )
    ds = load_dataset(make_yolo(tmp_path / "d", yaml_text=text))
    assert len(ds.split("train")) == 12 and len(ds.split("valid")) == 12
    kinds = sorted((p.kind, p.severity) for p in ds.problems)
    assert kinds == [("missing-base-path", "warning"), ("missing-split", "warning")]
    stale = next(p for p in ds.problems if p.kind == "missing-base-path")
    assert "/content/datasets/emotions-3" in stale.reason and stale.path.endswith("data.yaml")


def test_yolo_path_key_is_the_base_of_split_paths(tmp_path: Path) -> None:
    make_yolo(tmp_path / "d" / "images-here")
    (tmp_path / "d" / "data.yaml").write_text(
        'path: images-here\ntrain: train/images\nval: valid/images\nnames: ["A", "B", "C"]\n'
    )
    ds = load_dataset(tmp_path / "d")
    assert len(ds.split("train")) == 12 and len(ds.split("valid")) == 12
    assert ds.problems == []


def test_yolo_split_linked_from_elsewhere_keeps_its_name(tmp_path: Path) -> None:
    """A ``test`` folder that is a link to data stored under another name (how a withheld
    split is often dropped in) is still the ``test`` split, not the folder it points to."""
    make_yolo(tmp_path / "store", splits=("holdout",))
    root = make_yolo(tmp_path / "d", splits=("train",))
    (root / "test").symlink_to(tmp_path / "store" / "holdout", target_is_directory=True)
    (root / "data.yaml").write_text(
        'train: ./train/images\ntest: ./test/images\nnames: ["Anger", "Happy", "Sad"]\n'
    )
    ds = load_dataset(root)
    assert set(ds.splits) == {"train", "test"}
    assert len(ds.split("test")) == 12
    assert ds.problems == []


def test_yolo_webp_and_jpg_mix(tmp_path: Path) -> None:
    root = make_yolo(tmp_path / "d", ext=".webp", splits=("train",))
    make_yolo(tmp_path / "d", ext=".jpg", splits=("valid",))  # rewrites yaml with valid only
    text = 'train: ./train/images\nval: ./valid/images\nnames: ["Anger", "Happy", "Sad"]\n'
    (root / "data.yaml").write_text(text)
    ds = load_dataset(root)
    assert len(ds.split("train")) == 12 and len(ds.split("valid")) == 12


def test_folders_with_splits(folder_dataset: Path) -> None:
    ds = load_dataset(folder_dataset)
    assert ds.layout == "folders"
    assert ds.color == "gray" and ds.image_size == 24
    assert set(ds.splits) == {"train", "val"}
    assert ds.split("train").images.shape == (12, 24, 24, 1)


def test_folders_without_splits_and_synonyms(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "ck", classes=("anger", "happiness", "sadness"), splits=None)
    ds = load_dataset(root)
    assert list(ds.splits) == ["all"]
    assert ds.classes == ["anger", "happiness", "sadness"]
    assert ds.canonical == ["angry", "happy", "sad"]
    assert ds.split("train").name == "all"  # what `train`, `svm` and `study` train on
    with pytest.raises(KeyError, match="no split 'val'; this dataset has all"):
        ds.split("val")


def test_size_and_color_options(folder_dataset: Path) -> None:
    ds = load_dataset(folder_dataset, image_size=40, color="rgb", splits=["val"])
    assert list(ds.splits) == ["val"]
    split = ds.split("val")
    assert split.images.shape == (12, 40, 40, 3)
    # gray source converted to RGB: the three channels are equal
    assert np.array_equal(split.images[..., 0], split.images[..., 2])


def test_unknown_split_name_is_a_clear_error(folder_dataset: Path) -> None:
    with pytest.raises(KeyError, match="this dataset has train, val"):
        load_dataset(folder_dataset, splits=["holdout"])


@pytest.mark.parametrize("with_usage", [True, False])
def test_fer2013_csv(tmp_path: Path, with_usage: bool) -> None:
    path = make_fer_csv(tmp_path / "fer2013.csv")
    if not with_usage:
        lines = path.read_text().splitlines()
        path.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    ds = load_dataset(path)
    assert ds.layout == "fer2013-csv"
    assert ds.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert ds.image_size == 48 and ds.color == "gray"
    if with_usage:
        assert {k: len(v) for k, v in ds.splits.items()} == {"train": 3, "val": 3, "test": 3}
    else:
        assert {k: len(v) for k, v in ds.splits.items()} == {"train": 9}
    # labels are FER2013's own order: the first row is emotion 0 (angry)
    assert ds.split("train").labels[0] == 0
    first = [int(v) for v in path.read_text().splitlines()[1].split(",")[1].split()[:3]]
    assert ds.split("train").images[0, 0, :3, 0].tolist() == first


def test_fer2013_csv_found_in_folder_and_resized(tmp_path: Path) -> None:
    make_fer_csv(tmp_path / "icml_face_data.csv")
    ds = load_dataset(tmp_path, image_size=32, color="rgb")
    assert ds.split("train").images.shape == (3, 32, 32, 3)


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16", "LA", "1"])
def test_image_modes_decode(tmp_path: Path, mode: str) -> None:
    from ferkit.data import decode_image

    img = image_of_mode(mode)
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    img.save(path)
    rgb = decode_image(path, 16, "rgb")
    gray = decode_image(path, 16, "gray")
    assert rgb.shape == (16, 16, 3) and gray.shape == (16, 16, 1)
    assert rgb.dtype == np.uint8 and gray.dtype == np.uint8


def image_of_mode(mode: str):
    from PIL import Image

    if mode == "I;16":
        arr = np.linspace(0, 65535, 20 * 20).reshape(20, 20).astype(np.uint16)
        return Image.fromarray(arr)
    return Image.new("RGB", (20, 20), (200, 30, 90)).convert(mode)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    from ferkit.data import decode_image

    img = image_of_mode("I;16")
    img.save(tmp_path / "x.tif")
    arr = decode_image(tmp_path / "x.tif", None, "gray")
    assert arr.min() == 0 and arr.max() == 255 and 100 < arr.mean() < 155


def test_exif_rotation_applied(tmp_path: Path) -> None:
    from PIL import Image

    from ferkit.data import decode_image

    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert decode_image(tmp_path / "r.jpg").shape == (40, 20, 3)


def test_large_jpeg_is_downscaled_while_decoding(tmp_path: Path) -> None:
    from PIL import Image

    from ferkit.data import decode_image

    Image.new("RGB", (256, 256), (10, 200, 10)).save(tmp_path / "big.jpg")
    # 65,536 px is over a 10,000 px limit, but JPEG can decode at 1/8 scale within it
    arr = decode_image(tmp_path / "big.jpg", 16, "rgb", max_pixels=10_000)
    assert arr.shape == (16, 16, 3)


def _group_photo(path: Path, faces: list[tuple[int, int, int, int, int]], size=(320, 200)) -> None:
    """A photo with flat 'faces' of known grey level at (left, top, width, height)."""
    from PIL import Image

    img = np.full((size[1], size[0], 3), 128, np.uint8)
    for left, top, w, h, level in faces:
        img[top : top + h, left : left + w] = level
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _yolo_line(cid: int, face: tuple[int, int, int, int, int], size=(320, 200)) -> str:
    left, top, w, h, _ = face
    W, H = size
    return f"{cid} {(left + w / 2) / W:.6f} {(top + h / 2) / H:.6f} {w / W:.6f} {h / H:.6f}"


def test_yolo_detection_labels_crop_each_face(tmp_path: Path) -> None:
    """A face-detection export: each label line is one face of a group photo, cropped out as
    its own sample (squared, so not stretched), with the photo's other faces left out."""
    root = tmp_path / "d"
    happy, sad = (40, 50, 60, 80, 230), (200, 20, 70, 70, 20)  # a tall face and a square one
    for split in ("train", "valid"):
        for i in range(3):
            _group_photo(root / split / "images" / f"p{i}.png", [happy, sad])
            (root / split / "labels").mkdir(parents=True, exist_ok=True)
            lines = [_yolo_line(0, happy), _yolo_line(1, sad)]
            (root / split / "labels" / f"p{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(
        'train: train/images\nval: valid/images\nnames: ["happy", "sad"]\n'
    )
    ds = load_dataset(root)
    train = ds.split("train")
    assert ds.problems == []
    assert len(train) == 6 and train.counts() == {"happy": 3, "sad": 3}
    assert ds.image_size == 75  # median crop side (80 and 70 px), not the photo's 320
    assert train.refs[:2] == [
        f"{root / 'train/images/p0.png'}#box1",
        f"{root / 'train/images/p0.png'}#box2",
    ]
    sad_crop = train.images[train.labels == 1][0]
    assert sad_crop.max() <= 25  # the whole square crop is the dark face
    happy_crop = train.images[train.labels == 0][0].astype(int)
    middle = happy_crop[:, 10:-10]  # an 80 px square around a 60 x 80 face: grey margins
    assert middle.min() >= 220 and happy_crop[:, :3].max() <= 140


def test_crop_box_is_square_and_shifted_inside_the_image() -> None:
    from ferkit.data.images import crop_box

    assert crop_box(320, 200, (0.5, 0.5, 0.25, 0.2)) == (120, 60, 200, 140)  # 80 x 40 -> 80 x 80
    assert crop_box(320, 200, (0.02, 0.98, 0.1, 0.1)) == (0, 168, 32, 200)  # a corner: shifted
    assert crop_box(100, 60, (0.5, 0.5, 1.0, 1.0)) == (0, 0, 100, 60)  # larger than the image


def test_yolo_bad_box_lines_are_reported_and_good_faces_kept(tmp_path: Path) -> None:
    root = make_yolo(tmp_path / "d", per_class=2)
    label = root / "train/labels/train_0_0.txt"
    label.write_text(
        "0 0.5 0.5 0.4 0.4\n1 0.5 0.5 0 0.3\n2 0.5 0.5 0.5\n9 0.5 0.5 0.2 0.2\n1 a b c d\n"
        "0 0.5 0.5 1 1\n1\n"  # the whole image twice: one sample, the other line reported
    )
    ds = load_dataset(root)
    problems = sorted((p.kind, p.reason) for p in ds.problems)
    kinds = ["bad-box", "bad-box", "bad-box", "class-out-of-range", "duplicate-label"]
    assert [k for k, _ in problems] == kinds
    assert all(p.path == str(label) for p in ds.problems)
    reasons = " | ".join(r for _, r in problems)
    assert "line 2: box 0.5 0.5 0 0.3 is not inside the image" in reasons
    assert "line 3: expected 4 box numbers" in reasons and "line 5: box is not numeric" in reasons
    assert "line 4: class id 9 out of range" in reasons
    assert "line 7: the whole image is labelled again" in reasons
    refs = ds.split("train").refs
    image = str(root / "train/images/train_0_0.png")
    assert f"{image}#box1" in refs and refs.count(image) == 1 and len(refs) == 7


def test_yolo_polygon_label_is_boxed(tmp_path: Path) -> None:
    root = make_yolo(tmp_path / "d", per_class=1)
    (root / "train/labels/train_1_0.txt").write_text("1 0.25 0.25 0.75 0.25 0.75 0.75 0.25 0.75\n")
    ds = load_dataset(root, image_size=32)
    ref = next(r for r in ds.split("train").refs if "train_1_0" in r)
    assert ref.endswith("#box1") and ds.problems == []


def test_small_face_in_a_large_jpeg_keeps_its_detail(tmp_path: Path) -> None:
    """A large JPEG decodes at a reduced scale (draft) for speed; a small face box must still
    get its pixels. Decoded for the whole image's size instead, the 4 px pattern of this face
    blurs away (mean neighbour difference 22 against 71 from a lossless copy, measured)."""
    from PIL import Image

    from ferkit.data.images import decode_image

    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 2, (100, 100, 1), dtype=np.uint8) * 255
    img = np.full((2400, 2400, 3), 128, np.uint8)
    img[1000:1400, 1000:1400] = np.repeat(np.repeat(blocks, 4, 0), 4, 1)  # 4 px blocks
    Image.fromarray(img).save(tmp_path / "big.jpg", quality=95)
    Image.fromarray(img).save(tmp_path / "big.png")
    box = (0.5, 0.5, 400 / 2400, 400 / 2400)

    def detail(name: str) -> float:
        face = decode_image(tmp_path / name, 100, "gray", box=box)[..., 0].astype(float)
        return float(np.abs(np.diff(face, axis=1)).mean())

    assert detail("big.jpg") >= 0.8 * detail("big.png") > 40
