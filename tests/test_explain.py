"""Grad-CAM and feature maps on networks whose right answer is known.

``QuadrantNet`` is built by hand so the correct Grad-CAM can be written down: its class-1 logit
sees only the top-left quadrant of the image (and is *lowered* by the top-right one), its class-0
logit sees only the top-right quadrant, and the bottom half is ignored by both. An image with
bright squares in all of those places therefore has exactly one correct heatmap per class; a
Grad-CAM that ignored the gradients, dropped the ReLU, flipped or transposed the upsampled map,
or explained the wrong class would put its mass somewhere else.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ferkit.data.images import decode_image
from ferkit.errors import FerkitError
from ferkit.evaluation.explain import (
    EXPLAIN_FILE,
    FEATURE_MAPS_FILE,
    GRADCAM_FILE,
    MIN_CAM_SIDE,
    default_layer,
    explain_image,
    feature_map_figure,
    feature_maps,
    grad_cam,
    gradcam_figure,
    layer_shapes,
    layer_table,
    list_layers,
    resolve_layer,
    resolve_target,
    run_layers,
)
from ferkit.models import load_run

SIZE = 16  # input side; the gated map is 8x8, so Grad-CAM must upsample


class Gate(nn.Module):
    """Multiplies channel 0 by a top-right mask and channel 1 by a top-left mask (8x8)."""

    def __init__(self) -> None:
        super().__init__()
        mask = torch.zeros(1, 2, SIZE // 2, SIZE // 2)
        half = SIZE // 4
        mask[0, 0, :half, half:] = 1.0  # class 0 looks top-right
        mask[0, 1, :half, :half] = 1.0  # class 1 looks top-left
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


class QuadrantNet(nn.Module):
    """conv (identity) -> ReLU -> 2x2 avg-pool -> quadrant gate -> global mean -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)  # in place, as in the ferkit networks
        self.pool = nn.AvgPool2d(2)
        self.gate = Gate()
        self.head = nn.Linear(2, 2)
        self.cam_layer = "gate"
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, 0, 1, 1] = 1.0  # both channels copy the input
            self.conv.bias.zero_()
            # logit0 = 10*mean(A0); logit1 = 10*mean(A1) - 5*mean(A0)
            self.head.weight.copy_(torch.tensor([[10.0, 0.0], [-5.0, 10.0]]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.gate(self.pool(self.relu(self.conv(x))))
        return self.head(a.mean(dim=(2, 3)))


def quadrant_image() -> torch.Tensor:
    """Bright squares top-left (large), top-right (small) and bottom-left (ignored)."""
    x = torch.zeros(1, 1, SIZE, SIZE)
    x[0, 0, 1:6, 1:6] = 1.0  # top-left
    x[0, 0, 2:5, 10:13] = 1.0  # top-right
    x[0, 0, 10:15, 2:7] = 1.0  # bottom-left: no class looks here
    return x


def quadrant_mass(heat: np.ndarray) -> dict[str, float]:
    h = SIZE // 2
    total = float(heat.sum())
    return {
        "tl": float(heat[:h, :h].sum()) / total,
        "tr": float(heat[:h, h:].sum()) / total,
        "bl": float(heat[h:, :h].sum()) / total,
        "br": float(heat[h:, h:].sum()) / total,
    }


def no_hooks(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in model.modules()
    )


# --------------------------------------------------------------------------- Grad-CAM


def test_gradcam_concentrates_where_the_class_looks() -> None:
    model = QuadrantNet().eval()
    x = quadrant_image()

    heat, target, probs = grad_cam(model, x)
    assert target == 1  # the large top-left square wins
    assert heat.shape == (SIZE, SIZE) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    assert probs.shape == (2,) and probs.sum() == pytest.approx(1.0, abs=1e-6)
    assert int(probs.argmax()) == 1
    mass = quadrant_mass(heat)
    assert mass["tl"] > 0.97, mass  # top-right suppressed by the ReLU (negative weight)
    assert mass["bl"] < 0.01 and mass["br"] < 0.01, mass

    heat0, target0, probs0 = grad_cam(model, x, target=0)
    assert target0 == 0
    np.testing.assert_allclose(probs0, probs)  # the target does not change the prediction
    mass0 = quadrant_mass(heat0)
    assert mass0["tr"] > 0.97, mass0
    assert mass0["bl"] < 0.01, mass0


def test_gradcam_equals_the_hand_computed_map() -> None:
    """For class 1, alpha_1 > 0 and alpha_0 < 0 with disjoint supports, so the CAM is the
    bilinearly upsampled top-left-gated activation, normalised to a maximum of 1."""
    model = QuadrantNet().eval()
    x = quadrant_image()
    with torch.no_grad():
        act = model.gate(model.pool(torch.relu(model.conv(x))))[:, 1:2]
        expected = torch.nn.functional.interpolate(
            act, size=(SIZE, SIZE), mode="bilinear", align_corners=False
        )[0, 0].numpy()
    expected = expected / expected.max()
    heat, _, _ = grad_cam(model, x, target=1)
    np.testing.assert_allclose(heat, expected, atol=1e-6)


def test_gradcam_before_an_inplace_relu_matches_autograd() -> None:
    """``conv``'s output is overwritten by the in-place ReLU that follows it; the hooked
    activation and gradient must still be those of the conv output itself."""
    model = QuadrantNet().eval()
    with torch.no_grad():
        model.conv.bias.copy_(torch.tensor([-0.3, 0.2]))  # some negatives for the ReLU to clip
    x = quadrant_image() + 0.1 * torch.randn(
        1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0)
    )
    act = model.conv(x)
    act.retain_grad()
    logits = model.head(model.gate(model.pool(torch.relu(act))).mean(dim=(2, 3)))
    logits[0, 1].backward()
    weights = act.grad.mean(dim=(2, 3), keepdim=True)
    expected = torch.relu((weights * act.detach()).sum(dim=1))[0].numpy()
    expected = expected / expected.max()  # already at input resolution: no upsampling
    model.zero_grad(set_to_none=True)

    heat, _, _ = grad_cam(model, x, layer="conv", target=1)
    np.testing.assert_allclose(heat, expected, atol=1e-5)


def test_gradcam_leaves_the_model_as_it_found_it() -> None:
    model = QuadrantNet()
    model.train()
    model.pool.eval()  # mixed modes must survive, not just the root's flag
    model.conv.weight.requires_grad_(False)  # e.g. a frozen backbone
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    x = quadrant_image()

    with torch.no_grad():  # a caller's no_grad must not break the backward pass
        heat, target, _ = grad_cam(model, x)
    assert target == 1 and quadrant_mass(heat)["tl"] > 0.97

    assert no_hooks(model)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients leak
    assert not x.requires_grad and x.grad is None  # the caller's tensor is untouched


def test_explanations_use_eval_mode_even_on_a_training_model() -> None:
    """Dropout must be off while explaining (the map must describe ``predict``'s forward
    pass), and the model must be back in training mode afterwards."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.Dropout(0.5),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        expected = torch.softmax(model.eval()(x)[0], dim=0).numpy()
    model.train()
    _, _, probs = grad_cam(model, x)
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    maps = feature_maps(model, x, layer="1")
    np.testing.assert_allclose(maps, feature_maps(model, x, layer="0"))  # dropout is identity
    assert all(m.training for m in model.modules())


def test_gradcam_works_with_everything_frozen_and_under_autocast() -> None:
    model = QuadrantNet().eval().requires_grad_(False)
    x = quadrant_image()
    plain, _, _ = grad_cam(model, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast, _, _ = grad_cam(model, x)
    np.testing.assert_allclose(autocast, plain, atol=1e-6)  # fp32 inside, autocast off
    assert not any(p.requires_grad for p in model.parameters())


def test_hooks_removed_when_the_forward_pass_fails() -> None:
    model = QuadrantNet()
    model.train()
    with pytest.raises(RuntimeError):
        grad_cam(model, torch.zeros(1, 3, SIZE, SIZE))  # wrong channel count for the conv
    assert no_hooks(model)
    assert all(m.training for m in model.modules())


def test_gradcam_rejects_bad_targets_and_batches() -> None:
    model = QuadrantNet().eval()
    with pytest.raises(FerkitError, match="out of range"):
        grad_cam(model, quadrant_image(), target=2)
    with pytest.raises(FerkitError, match="one image"):
        grad_cam(model, torch.zeros(2, 1, SIZE, SIZE))
    assert no_hooks(model)


# --------------------------------------------------------------------------- feature maps/layers


def test_feature_maps_shape_and_values() -> None:
    model = QuadrantNet().eval()
    x = quadrant_image()
    maps = feature_maps(model, x)
    assert maps.shape == (2, SIZE // 2, SIZE // 2) and maps.dtype == np.float32
    with torch.no_grad():
        expected = model.gate(model.pool(torch.relu(model.conv(x))))[0].numpy()
    np.testing.assert_allclose(maps, expected)
    conv = feature_maps(model, x[0], layer="conv")  # (C, H, W) input is accepted too
    assert conv.shape == (2, SIZE, SIZE)
    assert no_hooks(model)


def test_unknown_layer_lists_valid_names() -> None:
    model = QuadrantNet().eval()
    assert list_layers(model) == ["conv", "gate"]  # convs plus the model's cam_layer
    with pytest.raises(FerkitError, match="unknown layer 'nope'") as err:
        feature_maps(model, quadrant_image(), layer="nope")
    assert "conv" in str(err.value) and "gate" in str(err.value)
    with pytest.raises(FerkitError, match="not an \\(N, C, H, W\\) feature map"):
        grad_cam(model, quadrant_image(), layer="head")  # exists, but is not spatial
    assert no_hooks(model)


def test_any_module_without_cam_layer_uses_its_last_conv() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 3, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 2),
    ).eval()
    x = torch.rand(1, 1, 12, 12)
    assert feature_maps(model, x).shape == (3, 6, 6)
    heat, _, _ = grad_cam(model, x)
    assert heat.shape == (12, 12)
    assert list_layers(model) == ["0", "2"]


def test_ferkit_network_layers() -> None:
    nets = pytest.importorskip("ferkit.models.nets")
    model = nets.create_model("seedcnn", 3, 1, 48).eval()
    layers = list_layers(model)
    assert model.cam_layer in layers and "block1.conv" in layers
    assert "head" not in layers and "classifier" not in layers
    x = torch.randn(1, 1, 48, 48)
    assert feature_maps(model, x).shape == (64, 8, 8)
    assert feature_maps(model, x, layer="block1.conv").shape == (16, 46, 46)
    heat, _, _ = grad_cam(model, x, layer="block2")
    assert heat.shape == (48, 48)
    assert no_hooks(model)


# --------------------------------------------------------------------------- default layer


def tiny_fernet(size: int = 48, channels: int = 1) -> nn.Module:
    nets = pytest.importorskip("ferkit.models.nets")
    torch.manual_seed(0)
    model = nets.create_model("fernet", 3, channels, size, width=0.25, depth=1).eval()
    from conftest import trained_like_bn

    trained_like_bn(model)  # fresh blocks start as the identity; give them some contrast
    return model


@pytest.mark.parametrize(("size", "channels"), [(48, 1), (96, 3)])
def test_default_layer_is_the_deepest_with_a_fine_enough_map(size: int, channels: int) -> None:
    """FerNet's last stage is 3x3 at both shipped sizes, too coarse to tell eyes from mouth:
    the default is the deepest layer at >= MIN_CAM_SIDE px, the whole of stage3 (6x6)."""
    model = tiny_fernet(size, channels)
    shapes = layer_shapes(model)
    assert shapes[model.cam_layer][1:] == (3, 3)  # the old default
    name = default_layer(model)
    assert name == "stage3" and min(shapes[name][1:]) >= MIN_CAM_SIDE
    deeper = list(shapes)[list(shapes).index(name) + 1 :]
    assert deeper and all(min(shapes[n][1:]) < MIN_CAM_SIDE for n in deeper)
    assert resolve_layer(model) == name  # what grad_cam / feature_maps / explain use
    x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(1))
    assert feature_maps(model, x).shape[1:] == (6, 6)
    heat, _, _ = grad_cam(model, x)
    assert heat.shape == (size, size) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    assert no_hooks(model)


def test_default_layer_follows_the_input_and_falls_back_to_the_largest_map() -> None:
    model = tiny_fernet(48)
    big = torch.zeros(1, 1, 96, 96)  # a larger input has finer maps: stage4 is 6x6 there
    assert default_layer(model, big) == "stage4"
    assert default_layer(model, big, min_side=12) == "stage3"
    # nothing reaches 100 px: the deepest of the largest maps (the stem's full-size conv)
    assert default_layer(model, min_side=100) == "stem.conv1"
    assert layer_shapes(model)["stem.conv1"][1:] == (48, 48)


def test_layer_shapes_are_in_finishing_order() -> None:
    """A stage finishes after its blocks, so it comes after them (and is the one chosen)."""
    names = list(layer_shapes(tiny_fernet(48)))
    assert names.index("stage3.block1.conv2.bn") < names.index("stage3.block1")
    assert names.index("stage3.block1") < names.index("stage3") < names.index("stage4")


def test_layer_table_lists_and_marks_the_default() -> None:
    model = tiny_fernet(48)
    rows = layer_table(model)
    assert [r["name"] for r in rows] == list_layers(model)
    marked = [r["name"] for r in rows if r["default"]]
    assert marked == ["stage3"]
    shapes = {r["name"]: r["shape"] for r in rows}
    assert shapes["stage3"] == [32, 6, 6] and shapes["stage4"] == [64, 3, 3]


def test_a_wrong_layer_name_suggests_the_close_ones() -> None:
    model = tiny_fernet(48)
    with pytest.raises(FerkitError, match=r"unknown layer 'stage5'.*did you mean stage4") as err:
        grad_cam(model, torch.zeros(1, 1, 48, 48), layer="stage5")
    assert "--list-layers" in str(err.value)  # too many layers to list them all
    with pytest.raises(FerkitError, match=r"did you mean stage3\.block1\.conv1"):
        resolve_layer(model, "stage3.block1.cnv1")
    with pytest.raises(FerkitError) as err:
        resolve_layer(model, "zzzz")
    assert "did you mean" not in str(err.value)  # no suggestion beats a wrong one
    assert no_hooks(model)


# --------------------------------------------------------------------------- figures/targets


def test_figures_draw() -> None:
    maps = np.random.default_rng(0).normal(size=(40, 6, 6)).astype(np.float32)
    fig = feature_map_figure(maps, max_maps=32, title="run / layer")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [str(k) for k in range(32)]  # first N only
    maps[0] = 0.0  # a dead channel is labelled as such instead of drawn as a random colour
    assert feature_map_figure(maps).axes[0].texts[0].get_text() == "0 (flat 0)"
    mosaic = np.ma.filled(ax.images[0].get_array(), np.nan)
    # 6x6 maps are enlarged to 24x24 tiles in a 6x6 grid; 4 grid cells stay blank (NaN)
    assert np.isfinite(mosaic).sum() == 32 * 24 * 24
    assert "channels 0-31 of 40 (6x6)" in ax.get_title()
    image = np.zeros((16, 16, 1), np.uint8)
    cam = gradcam_figure(image, np.zeros((16, 16)), "Happy", 0.8, "Sad", 0.1)
    assert "Happy" in cam._suptitle.get_text() and "Sad" in cam._suptitle.get_text()


def test_resolve_target() -> None:
    classes = ["Anger", "Happy", "Sad"]
    assert resolve_target(None, classes) is None
    assert resolve_target("happy", classes) == 1
    assert resolve_target("SAD", classes) == 2
    assert resolve_target(0, classes) == 0
    assert resolve_target("2", classes) == 2
    assert resolve_target("joy", classes, ["anger", "happiness", "joy"]) == 2
    with pytest.raises(FerkitError, match=r"Anger.*Happy.*Sad"):
        resolve_target("hapy", classes)
    with pytest.raises(FerkitError, match="out of range"):
        resolve_target(3, classes)


# --------------------------------------------------------------------------- saved runs


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nets = pytest.importorskip("ferkit.models.nets")
    from ferkit.models.torch_run import save_torch_run

    torch.manual_seed(0)
    model = nets.create_model("seedcnn", 3, 1, 48)
    run_dir = tmp_path_factory.mktemp("run")
    card = {
        "classes": ["Anger", "Happy", "Sad"],
        "canonical": ["angry", "happy", "sad"],
        "image_size": 48,
        "color": "gray",
        "mean": [0.5],
        "std": [0.25],
    }
    return save_torch_run(run_dir, model, card)


@pytest.fixture(scope="module")
def face(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An RGB 64x64 image: explain_image must resize it and turn it gray like the run."""
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("img") / "face.png"
    Image.fromarray(arr, "RGB").save(path)
    return path


def test_explain_image_writes_figures_and_json(torch_run: Path, face: Path, tmp_path: Path) -> None:
    out = tmp_path / "explain"
    result = explain_image(torch_run, face, out, max_maps=8)
    for name in (GRADCAM_FILE, FEATURE_MAPS_FILE, EXPLAIN_FILE):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    with Image.open(out / GRADCAM_FILE) as img:
        assert img.format == "PNG"
    assert json.loads((out / EXPLAIN_FILE).read_text()) == result

    run = load_run(torch_run)
    pixels = np.array(decode_image(face, size=48, color="gray"))[None]
    predicted = int(run.predict(pixels)[0])
    assert result["predicted"]["index"] == predicted
    assert result["predicted"]["class"] == run.canonical[predicted]
    probs = run.estimator.predict_proba(pixels)[0]
    np.testing.assert_allclose(
        [result["probabilities"][c] for c in run.canonical], probs, rtol=1e-5, atol=1e-6
    )
    assert result["layer"] == "block3.relu" and result["target"] is None
    assert result["gradcam_class"]["index"] == predicted
    assert result["feature_maps"] == {"channels": 64, "shown": 8, "size": [8, 8]}
    assert result["files"] == {
        "gradcam": GRADCAM_FILE,
        "feature_maps": FEATURE_MAPS_FILE,
        "json": EXPLAIN_FILE,
    }


def test_explain_image_target_layer_and_errors(torch_run: Path, face: Path, tmp_path: Path) -> None:
    run = load_run(torch_run)
    result = explain_image(run, face, tmp_path / "a", layer="block2.conv", target="SAD")
    assert result["target"] == {"index": 2, "class": "sad"}
    assert result["gradcam_class"] == {"index": 2, "class": "sad"}
    assert result["layer"] == "block2.conv"
    assert result["feature_maps"]["channels"] == 32

    with pytest.raises(FerkitError, match=r"Anger.*Happy.*Sad"):
        explain_image(run, face, tmp_path / "b", target="bored")
    with pytest.raises(FerkitError, match=r"block3\.relu"):
        explain_image(run, face, tmp_path / "b", layer="block9")
    missing = tmp_path / "nowhere.png"
    with pytest.raises(FerkitError, match=r"nowhere\.png"):
        explain_image(run, missing, tmp_path / "b")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(FerkitError, match=r"broken\.png"):
        explain_image(run, broken, tmp_path / "b")
    assert not (tmp_path / "b").exists()  # nothing half-written on failure
    assert no_hooks(run.estimator.model)


def test_explain_a_photo_explains_its_largest_face(torch_run: Path, tmp_path: Path) -> None:
    """A photo is cut to its face as predict cuts it: the network sees that crop, not the
    whole photo squeezed to 48 px; ``whole`` keeps the old behaviour on request."""
    skimage_data = pytest.importorskip("skimage.data")
    from ferkit.faces import FRAMINGS, find_faces

    photo = skimage_data.astronaut()
    path = tmp_path / "astronaut.png"
    Image.fromarray(photo).save(path)
    run = load_run(torch_run)
    result = explain_image(run, path, tmp_path / "face")
    faces = find_faces(photo, size=48, color="gray", **FRAMINGS["default"])
    largest = max(faces, key=lambda f: f.box.area)
    box = result["face"]["box"]
    assert (box["left"], box["top"], box["width"]) == (
        largest.box.left,
        largest.box.top,
        largest.box.width,
    )
    assert result["face"]["faces_found"] == len(faces) and result["face"]["framing"] == "default"
    probs = run.estimator.predict_proba(largest.crop[None])[0]
    np.testing.assert_allclose(
        [result["probabilities"][c] for c in run.canonical], probs, rtol=1e-5, atol=1e-6
    )
    whole = explain_image(run, path, tmp_path / "whole", crop="whole")
    assert whole["face"] is None
    squeezed = np.array(decode_image(path, size=48, color="gray"))[None]
    np.testing.assert_allclose(
        [whole["probabilities"][c] for c in run.canonical],
        run.estimator.predict_proba(squeezed)[0],
        rtol=1e-5,
        atol=1e-6,
    )


def test_explain_crop_modes_without_a_face(torch_run: Path, face: Path, tmp_path: Path) -> None:
    run = load_run(torch_run)
    assert explain_image(run, face, tmp_path / "small")["face"] is None  # 64 px: a crop
    noise = tmp_path / "noise.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8), "RGB").save(noise)
    result = explain_image(run, noise, tmp_path / "auto")
    assert result["face"]["faces_found"] == 0
    assert "no face found in this 300x200 image" in result["face"]["note"]
    with pytest.raises(FerkitError, match=r"noise\.png: no face found.*--crop whole"):
        explain_image(run, noise, tmp_path / "strict", crop="face")
    with pytest.raises(FerkitError, match="crop must be one of auto, face, whole"):
        explain_image(run, noise, tmp_path / "strict", crop="middle")
    assert not (tmp_path / "strict").exists()


def test_run_layers_of_a_saved_run(torch_run: Path) -> None:
    listing = run_layers(torch_run)
    assert listing["model"] == "seedcnn" and listing["input"] == [1, 48, 48]
    assert listing["default"] == "block3.relu" and listing["min_side"] == MIN_CAM_SIDE
    rows = {r["name"]: r for r in listing["layers"]}
    assert rows["block3.relu"]["default"] and rows["block3.relu"]["shape"] == [64, 8, 8]
    assert sum(r["default"] for r in listing["layers"]) == 1
