"""Deep network registry and model families: shapes, gradients, the Network contract, errors,
and parameter counts against the seed notebooks' Keras ``model.summary()`` totals."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from ferkit.errors import FerkitError
from ferkit.models.nets import Network, create_model, default_input, list_models, model_options

# Smallest input each model accepts; also pins that every registered model is covered here.
MIN_SIZES = {"cnn10": 6, "convnet": 36, "fernet": 8, "resnet18": 32, "resnet50": 32, "seedcnn": 30}
# Too slow for a unit test on 2 cores; the model is still exercised at its smaller sizes.
SLOW = {("resnet50", 96)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Batch-2 tensors gain nothing from intra-op threads, and on a busy machine OpenMP's
    barrier waits make every small op 10-50x slower; restore the setting for other modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def keras_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters as Keras counts them: Keras includes BN's moving mean and
    variance as non-trainable weights, torch keeps them as buffers."""
    trainable = sum(p.numel() for p in model.parameters())
    moving = sum(
        b.numel()
        for name, b in model.named_buffers()
        if name.endswith(("running_mean", "running_var"))
    )
    return trainable, trainable + moving


def test_every_model_is_covered() -> None:
    assert set(list_models()) == set(MIN_SIZES)


def _cases() -> list[tuple[str, int, int]]:
    cases = []
    for name, smallest in MIN_SIZES.items():
        for channels, side in ((3, smallest), (1, 48), (3, 96)):
            if side >= smallest and (name, side) not in SLOW:
                cases.append((name, channels, side))
    return sorted(set(cases))


@pytest.mark.parametrize(("name", "channels", "side"), _cases())
def test_forward_backward_features_cam(name: str, channels: int, side: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, 5, channels, side)
    assert isinstance(model, Network)
    assert isinstance(model.head, nn.Linear)
    captured: list[torch.Tensor] = []
    layer = dict(model.named_modules())[model.cam_layer]
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    x = torch.randn(2, channels, side, side)
    logits = model(x)
    handle.remove()
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    assert len(captured) == 1 and captured[0].dim() == 4 and captured[0].shape[0] == 2
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.features(x).shape == (2, model.head.in_features)


@pytest.mark.parametrize("name", sorted(MIN_SIZES))
def test_bf16_channels_last_inference(name: str) -> None:
    """The training recipe's autocast + channels_last runs every model."""
    side = max(MIN_SIZES[name], 32)
    model = create_model(name, 4, 3, side).to(memory_format=torch.channels_last).eval()
    x = torch.randn(2, 3, side, side).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x).shape == (2, 4)


@pytest.mark.parametrize("name", sorted(MIN_SIZES))
def test_reset_head_and_config_round_trip(name: str) -> None:
    side = MIN_SIZES[name]
    model = create_model(name, 7, 3, side)
    in_features = model.head.in_features
    model.reset_head(3)
    assert model.head.in_features == in_features and model.head.out_features == 3
    assert model.num_classes == 3
    assert model(torch.randn(2, 3, side, side)).shape == (2, 3)

    config = json.loads(json.dumps(model.config))
    assert set(config) == {"name", "num_classes", "in_channels", "image_size", "kwargs"}
    rebuilt = create_model(**{k: v for k, v in config.items() if k != "kwargs"}, **config["kwargs"])
    assert rebuilt.config == model.config
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    rebuilt.load_state_dict(model.state_dict())


@pytest.mark.parametrize(
    ("name", "trainable", "total"),
    [
        ("cnn10", 15_179_720, 15_179_784),
        ("convnet", 9_781_960, 9_782_472),
        ("resnet50", 24_587_784, 24_640_904),
    ],
)
def test_parameter_counts_match_seed_summaries(name: str, trainable: int, total: int) -> None:
    """The AffectNet notebook's summaries: 96x96x3 input, 8 classes, tuned head sizes."""
    assert keras_counts(create_model(name, 8, 3, 96)) == (trainable, total)


def test_seedcnn_defaults_to_48px_gray() -> None:
    assert default_input("seedcnn") == (1, 48)
    model = create_model("seedcnn", 7)
    assert (model.config["in_channels"], model.config["image_size"]) == (1, 48)
    assert default_input("fernet") == (3, 96)


def test_fernet_stem_brings_48_and_96_to_the_same_map_size() -> None:
    sizes = []
    for channels, side in ((1, 48), (3, 96)):
        model = create_model("fernet", 7, channels, side)
        sizes.append(model.stem(torch.randn(1, channels, side, side)).shape[-2:])
    assert sizes[0] == sizes[1] == (24, 24)


def test_fernet_stem_48_keeps_full_resolution_and_round_trips() -> None:
    model = create_model("fernet", 7, 1, 48, width=0.25, depth=1, stem=48)
    assert model.stem(torch.randn(1, 1, 48, 48)).shape[-2:] == (48, 48)
    assert model.config["kwargs"]["stem"] == 48
    with pytest.raises(FerkitError, match="fernet: stem"):
        create_model("fernet", 7, 1, 48, stem=0)


def test_fernet_blocks_start_as_identity() -> None:
    model = create_model("fernet", 7, 1, 48, width=0.5, depth=1)
    last_bns = [m.conv2.bn.weight for m in model.modules() if hasattr(m, "shortcut")]
    assert len(last_bns) == 4 and all((w == 0).all() for w in last_bns)
    assert model.head.in_features == 128


@pytest.mark.parametrize("name", sorted(MIN_SIZES))
def test_too_small_image_names_the_minimum(name: str) -> None:
    with pytest.raises(FerkitError, match=f"minimum is {MIN_SIZES[name]}"):
        create_model(name, 7, 3, MIN_SIZES[name] - 1)


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(FerkitError, match=r"unknown model 'vgg'.*cnn10.*fernet"):
        create_model("vgg", 7)


@pytest.mark.parametrize("num_classes", [1, 0, 2.5, True])
def test_bad_class_count(num_classes: object) -> None:
    with pytest.raises(FerkitError, match="num_classes"):
        create_model("seedcnn", num_classes)  # type: ignore[arg-type]


def test_bad_channels() -> None:
    with pytest.raises(FerkitError, match="in_channels"):
        create_model("fernet", 7, 2, 48)


def test_reset_head_rejects_one_class() -> None:
    with pytest.raises(FerkitError, match="num_classes"):
        create_model("seedcnn", 7).reset_head(1)


def test_unknown_option_lists_valid_ones() -> None:
    assert model_options("resnet50") == ("dense_units", "dropout")
    with pytest.raises(FerkitError, match=r"\['units'\].*dense_units, dropout"):
        create_model("resnet50", 7, units=256)
    with pytest.raises(FerkitError, match="valid options: none"):
        create_model("convnet", 7, dropout=0.1)


@pytest.mark.parametrize(
    ("name", "option", "value"),
    [
        ("cnn10", "dropout", 1.0),
        ("cnn10", "conv_dropout", -0.1),
        ("cnn10", "dense_units", 0),
        ("fernet", "width", 0),
        ("fernet", "depth", 1.5),
        ("seedcnn", "dropout", "high"),
    ],
)
def test_bad_option_values(name: str, option: str, value: object) -> None:
    with pytest.raises(FerkitError, match=f"{name}: {option}"):
        create_model(name, 7, **{option: value})
