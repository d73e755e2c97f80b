"""Hostile run folders and checkpoints: every tampering is a FerkitError (CLI: exit 2, one
line), no payload ever runs, and nothing is allocated or opened on a card's say-so."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import SVC
from typer.testing import CliRunner

from conftest import make_folders, tiny_card
from ferkit.cli import app
from ferkit.errors import FerkitError
from ferkit.models import load_run, save_sklearn_run
from ferkit.models.nets import create_model
from ferkit.models.store import ALLOWED_SKOPS_TYPES, CARD, SKOPS_FILE
from ferkit.models.svm import SVMClassifier
from ferkit.models.torch_run import save_torch_run
from ferkit.training.checkpoint import trust_run

runner = CliRunner()
CLASSES = ["angry", "happy", "sad"]


def _card(size: int = 4) -> dict[str, Any]:
    return {"classes": CLASSES, "canonical": CLASSES, "image_size": size, "color": "gray"}


def _blobs(n: int = 30, d: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    return (rng.normal(size=(n, d)) + y[:, None] * 3).astype(np.float32), y


def _images(n: int = 6, size: int = 4) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 1), np.uint8)


def _read_card(run: Path) -> dict[str, Any]:
    return json.loads((run / CARD).read_text())


def _write_card(run: Path, card: dict[str, Any]) -> None:
    (run / CARD).write_text(json.dumps(card))


def _resign(run: Path, name: str = SKOPS_FILE) -> None:
    """Make the card's checksum match the (altered) weights, as an attacker who ships the
    whole folder would: only the content checks stand in the way then."""
    card = _read_card(run)
    card["weights_sha256"] = hashlib.sha256((run / name).read_bytes()).hexdigest()
    _write_card(run, card)


def _schema_types(path: Path) -> set[tuple[str, str]]:
    schema = json.loads(zipfile.ZipFile(path).read("schema.json"))
    found: set[tuple[str, str]] = set()
    stack: list[Any] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                found.add((item["__loader__"], f"{item['__module__']}.{item['__class__']}"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


# -- the allow-list is exactly what `ferkit svm` writes ---------------------------------------
SVM_CONFIGS = [
    ("exact", {"kernel": "rbf"}, "on"),
    ("pca", {"kernel": "linear"}, "off"),
    ("fast", {"kernel": "rbf", "head": "ridge"}, "off"),
    ("fast", {"kernel": "rbf", "head": "hinge"}, "on"),
]


@pytest.mark.parametrize("features", ["raw", "hog", "landmarks", "embedding", "cnn"])
def test_every_ferkit_svm_output_is_inside_the_allow_list(features: str, tmp_path: Path) -> None:
    from ferkit.features.dlib_models import MissingModelError
    from ferkit.training.svm import train_svm

    root = make_folders(tmp_path / "d", per_class=4, size=24)
    params = None
    if features == "cnn":
        net = create_model("fernet", 3, 3, 24, width=0.25)
        save_torch_run(tmp_path / "net", net, tiny_card(CLASSES, 24))
        params = {"run": str(tmp_path / "net")}
    allowed = set().union(*ALLOWED_SKOPS_TYPES.values())
    # the solvers do not depend on the features: every one with raw pixels (fast), the
    # extractors (dlib's are slow) with an exact SVC behind the sharpness step
    configs = SVM_CONFIGS if features == "raw" else SVM_CONFIGS[:1]
    for method, svm_params, sharpness in configs:
        out = tmp_path / f"{method}-{svm_params.get('head')}"
        try:
            train_svm(
                root,
                out,
                features=features,
                method=method,
                search=False,
                params=svm_params,
                progress=False,
                feature_params=params,
                match_sharpness=sharpness,
            )
        except MissingModelError as exc:  # dlib's model files are an optional install
            pytest.skip(str(exc))
        found = _schema_types(out / SKOPS_FILE)
        outside = {(lo, t) for lo, t in found if t not in ALLOWED_SKOPS_TYPES.get(lo, ())}
        assert not outside, f"`ferkit svm` wrote types the allow-list lacks: {outside}"
        assert set(sio.get_untrusted_types(file=out / SKOPS_FILE)) <= allowed
        assert "weights_sha256" in _read_card(out)
        load_run(out)


def test_the_allow_list_names_exact_types_and_no_function_loader() -> None:
    names = set().union(*ALLOWED_SKOPS_TYPES.values())
    assert not {n for n in names if n.endswith(".")}
    for dangerous in (
        "builtins.exec",
        "builtins.eval",
        "builtins.getattr",
        "numpy.full_like",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
    ):
        assert dangerous not in names
    assert not {
        "FunctionNode",
        "PartialNode",
        "MethodNode",
        "OperatorFuncNode",
        "ConstructorFromReduceNode",
    } & set(ALLOWED_SKOPS_TYPES)


# -- code execution payloads -------------------------------------------------------------------
def _chain_payload(marker: Path) -> Pipeline:
    """numpy.full_like -> builtins.str -> builtins.exec: predict would run the code."""
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    x, y = _blobs(d=16)
    return Pipeline(
        [
            (
                "fill",
                FunctionTransformer(
                    np.full_like, kw_args={"fill_value": code, "dtype": object, "shape": ()}
                ),
            ),
            ("text", FunctionTransformer(builtins.str)),
            ("run", FunctionTransformer(builtins.exec)),
            ("svm", SVC().fit(x, y)),
        ]
    )


def _assert_refused(run: Path, marker: Path, *types: str) -> None:
    with pytest.raises(FerkitError, match=r"model\.skops: refuses to load") as info:
        run_obj = load_run(run)
        run_obj.predict(_images())  # only reached when the load was (wrongly) accepted
    for name in types:
        assert name in str(info.value)
    assert not marker.exists(), "the payload ran"


def test_exec_chain_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    save_sklearn_run(tmp_path / "run", _chain_payload(marker), _card())
    _assert_refused(
        tmp_path / "run", marker, "numpy.full_like", "builtins.exec", "FunctionTransformer"
    )
    images = tmp_path / "img.png"
    from PIL import Image

    Image.fromarray(_images(1)[0, ..., 0]).save(images)
    for args in (
        ["predict", str(images), "--model", str(tmp_path / "run")],
        ["evaluate", str(tmp_path / "run"), str(tmp_path)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "refuses to load" in result.output and "Traceback" not in result.output
    assert not marker.exists()


def test_function_transformer_exec_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    save_sklearn_run(tmp_path / "run", FunctionTransformer(func=builtins.exec), _card())
    _assert_refused(tmp_path / "run", marker, "builtins.exec", "FunctionTransformer")


def _inject(run: Path, node: dict[str, Any]) -> None:
    """Edit the skops schema: ``node`` becomes an attribute of the saved SVMClassifier."""
    path = run / SKOPS_FILE
    with zipfile.ZipFile(path) as src:
        members = {name: src.read(name) for name in src.namelist()}
    schema = json.loads(members["schema.json"])
    attributes = schema["content"]
    attributes["content"]["payload"] = node
    key_type = {"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"}
    attributes["key_types"]["content"].append(key_type)  # skops zips keys with their types
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    _resign(run)


def _json(value: Any) -> dict[str, Any]:
    return {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def test_crafted_schema_calling_exec_at_load_is_refused(tmp_path: Path) -> None:
    """A hand-edited schema: skops would call builtins.exec(code) while building the model."""
    marker = tmp_path / "marker"
    x, y = _blobs()
    save_sklearn_run(tmp_path / "run", SVMClassifier(kernel="linear").fit(x, y), _card())
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    args = {
        "__class__": "tuple",
        "__module__": "builtins",
        "__loader__": "TupleNode",
        "content": [_json(code)],
    }
    _inject(
        tmp_path / "run",
        {
            "__class__": "exec",
            "__module__": "builtins",
            "__loader__": "ConstructorFromReduceNode",
            "content": args,
        },
    )
    _assert_refused(tmp_path / "run", marker, "builtins.exec (ConstructorFromReduceNode)")


def test_crafted_numpy_function_node_is_refused(tmp_path: Path) -> None:
    x, y = _blobs()
    save_sklearn_run(tmp_path / "run", SVMClassifier(kernel="linear").fit(x, y), _card())
    _inject(
        tmp_path / "run",
        {
            "__class__": "full_like",
            "__module__": "numpy",
            "__loader__": "FunctionNode",
            "content": None,
        },
    )
    _assert_refused(tmp_path / "run", tmp_path / "none", "numpy.full_like (FunctionNode)")


def test_not_a_skops_zip_is_a_clear_error(tmp_path: Path) -> None:
    x, y = _blobs()
    save_sklearn_run(tmp_path / "run", SVMClassifier(kernel="linear").fit(x, y), _card())
    (tmp_path / "run" / SKOPS_FILE).write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    _resign(tmp_path / "run")
    with pytest.raises(FerkitError, match=r"model\.skops: cannot load the model: not a skops"):
        load_run(tmp_path / "run")


# -- mandatory checksum and `ferkit trust` -----------------------------------------------------
@pytest.fixture
def svm_run(tmp_path: Path) -> Path:
    x, y = _blobs()
    return save_sklearn_run(tmp_path / "svm", SVMClassifier(kernel="linear").fit(x, y), _card())


@pytest.fixture
def net_run(tmp_path: Path) -> Path:
    net = create_model("fernet", 3, 3, 24, width=0.25)
    return save_torch_run(tmp_path / "net", net, tiny_card(CLASSES, 24))


def test_altered_svm_weights_are_refused(svm_run: Path) -> None:
    x, y = _blobs(d=16)
    other = sio.dumps(SVMClassifier(kernel="rbf").fit(x, 2 - y))
    (svm_run / SKOPS_FILE).write_bytes(other)
    with pytest.raises(FerkitError, match=r"model\.skops: weights do not match the checksum"):
        load_run(svm_run)


@pytest.mark.parametrize("fixture", ["svm_run", "net_run"])
def test_card_without_checksum_is_refused_until_trusted(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    run: Path = request.getfixturevalue(fixture)
    card = _read_card(run)
    del card["weights_sha256"]
    _write_card(run, card)
    with pytest.raises(
        FerkitError, match=rf"model\.json: has no weights_sha256.*ferkit trust {run}"
    ):
        load_run(run)
    result = runner.invoke(app, ["trust", str(run)])
    assert result.exit_code == 0, result.output
    assert "checksum recorded" in result.output
    load_run(run)
    assert (
        runner.invoke(app, ["trust", str(run)])
        .output.strip()
        .endswith("already recorded in model.json")
    )


def test_trust_refuses_unsafe_or_changed_weights(svm_run: Path, tmp_path: Path) -> None:
    weights = svm_run / SKOPS_FILE
    weights.write_bytes(sio.dumps(FunctionTransformer(func=builtins.exec)))
    result = runner.invoke(app, ["trust", str(svm_run)])
    assert result.exit_code == 2 and "refuses to load" in result.output
    x, y = _blobs()
    weights.write_bytes(sio.dumps(SVMClassifier(kernel="linear").fit(x, 2 - y)))
    result = runner.invoke(app, ["trust", str(svm_run)])
    assert result.exit_code == 2 and "--force" in result.output
    assert runner.invoke(app, ["trust", str(svm_run), "--force"]).exit_code == 0
    load_run(svm_run)
    assert runner.invoke(app, ["trust", str(tmp_path / "nothing")]).exit_code == 2


def test_shipped_models_carry_checksums() -> None:
    from ferkit.weights import shipped_cards

    for card in shipped_cards():
        assert len(card["weights_sha256"]) == 64, card["name"]


# -- architecture values and budget ------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("width", 1e6, r"width must be a number in \(0, 16\]"),
        ("width", float("inf"), "width must be a number"),
        ("width", "1", "width must be a number"),
        ("depth", 10**9, r"depth must be an integer in \[1, 16\]"),
        ("stem", -1, r"stem must be an integer in \[1, 1024\]"),
        ("dropout", 2, r"dropout must be a number in \[0, 1\)"),
        ("flip_average", "yes", "flip_average must be true or false"),
        ("image_size", 10**6, r"image_size must be an integer in \[1, 1024\]"),
        ("num_classes", 1.5, "num_classes must be an integer"),
        ("in_channels", 7, "in_channels must be an integer"),
        ("name", ["fernet"], "name must be a string"),
        ("kwargs", [1], "kwargs must be a JSON object"),
    ],
)
def test_tampered_architecture_is_refused_before_allocating(
    net_run: Path, key: str, value: Any, message: str
) -> None:
    card = _read_card(net_run)
    arch = card["architecture"]
    if key in arch:
        arch[key] = value
    else:
        arch["kwargs"][key] = value
    _write_card(net_run, card)
    with pytest.raises(FerkitError, match=rf"model\.json: architecture .*{message}"):
        load_run(net_run, backend="torch")


def test_architecture_over_budget_is_measured_on_the_meta_device(net_run: Path) -> None:
    card = _read_card(net_run)
    card["architecture"]["kwargs"].update(width=16.0, depth=16)  # each in range, together huge
    _write_card(net_run, card)
    with pytest.raises(FerkitError, match=r"would have [\d,]+ parameters .* the limit is"):
        load_run(net_run, backend="torch")


def test_bad_normalisation_in_card_is_refused(net_run: Path) -> None:
    card = _read_card(net_run)
    card["std"] = [0.5, 0.0, 0.5]
    _write_card(net_run, card)
    with pytest.raises(FerkitError, match=r"model\.json: std must be a list of 3"):
        load_run(net_run, backend="torch")


# -- files named by a card stay inside the run folder ------------------------------------------
@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "..\\secret", "C:/x", "", 3, "sub/../../x"]
)
@pytest.mark.parametrize("fixture", ["svm_run", "net_run"])
def test_card_cannot_name_files_outside_the_run(
    fixture: str, name: Any, request: pytest.FixtureRequest
) -> None:
    run: Path = request.getfixturevalue(fixture)
    card = _read_card(run)
    card["weights"] = name
    _write_card(run, card)
    with pytest.raises(FerkitError, match=r"model\.json: the weights .*(inside the run|file name)"):
        load_run(run, backend="torch")


def test_symlink_leaving_the_run_is_refused(net_run: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.safetensors"
    (net_run / "model.safetensors").rename(outside)
    os.symlink(outside, net_run / "model.safetensors")
    with pytest.raises(FerkitError, match="outside the run folder"):
        load_run(net_run, backend="torch")
    os.symlink(tmp_path, net_run / "up")  # a folder link on the way out
    card = _read_card(net_run)
    card["weights"] = "up/elsewhere.safetensors"
    _write_card(net_run, card)
    with pytest.raises(FerkitError, match="outside the run folder"):
        load_run(net_run, backend="torch")


def test_onnx_file_outside_the_run_is_refused(net_run: Path) -> None:
    card = _read_card(net_run)
    card["onnx"] = {
        "file": "../../etc/passwd",
        "sha256": "0" * 64,
        "weights_sha256": card["weights_sha256"],
    }
    _write_card(net_run, card)
    from ferkit.models.onnx_run import _checked_onnx_bytes

    with pytest.raises(FerkitError, match=r"ONNX file '\.\./\.\./etc/passwd' must be a file name"):
        _checked_onnx_bytes(net_run, card)
    assert load_run(net_run, backend="torch").backend == "torch"


# -- checkpoints -------------------------------------------------------------------------------
@pytest.fixture
def checkpoint_run(tmp_path: Path) -> Path:
    """A finished one-epoch training run (the checkpoint and its sidecar as `train` writes)."""
    from ferkit.training.config import TrainConfig
    from ferkit.training.deep import train_network

    data = make_folders(tmp_path / "d", classes=("happy", "sad"), per_class=6, size=24, mode="L")
    cfg = TrainConfig(
        model="fernet", epochs=1, batch_size=8, model_kwargs={"width": 0.25}, threads=1, patience=5
    )
    train_network(data, tmp_path / "run", cfg, progress=False)
    return tmp_path / "run"


def _resume(run: Path) -> dict[str, Any]:
    from ferkit.training.deep import _check_run_dir

    saved = _check_run_dir(run, resume=True)
    assert saved is not None
    return saved


def test_checkpoint_tampering_is_refused_with_clear_reasons(checkpoint_run: Path) -> None:
    from ferkit.training.checkpoint import CHECKPOINT, SIDECAR

    ckpt = checkpoint_run / CHECKPOINT
    good = ckpt.read_bytes()
    assert _resume(checkpoint_run)["epoch"] == 1
    blob = bytearray(good)
    for i in range(0, len(blob), max(1, len(blob) // 1031))[:1031]:
        blob[i] ^= 0x5A
    ckpt.write_bytes(bytes(blob))
    with pytest.raises(FerkitError, match=rf"{CHECKPOINT}: does not match the checksum in"):
        _resume(checkpoint_run)
    ckpt.write_bytes(b"")
    with pytest.raises(FerkitError, match=r"checkpoint is empty \(0 bytes"):
        _resume(checkpoint_run)
    ckpt.unlink()
    ckpt.mkdir()
    with pytest.raises(FerkitError, match="is a folder, not a checkpoint file"):
        _resume(checkpoint_run)
    ckpt.rmdir()
    ckpt.write_bytes(good)
    (checkpoint_run / SIDECAR).unlink()
    with pytest.raises(FerkitError, match=f"no checksum recorded.*ferkit trust {checkpoint_run}"):
        _resume(checkpoint_run)
    result = runner.invoke(app, ["trust", str(checkpoint_run)])
    assert result.exit_code == 0 and f"{SIDECAR}" in result.output, result.output
    assert _resume(checkpoint_run)["epoch"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({}, "lacks epoch, model"),
        ([1, 2], "holds a list"),
        ("not a dict", "holds a str"),
        ("wrong types", "'epoch' must be an integer"),
        ("bad history", "'history' must be a JSON list"),
        ("bad model", "'model' must be a dict of tensors"),
        ("not torch", "not a readable torch checkpoint"),
    ],
)
def test_checkpoint_structure_is_validated(
    checkpoint_run: Path, content: Any, message: str
) -> None:
    """What `trust` (and a resume whose hash matches) sees: the structure, key by key."""
    from ferkit.training.checkpoint import CHECKPOINT

    ckpt = checkpoint_run / CHECKPOINT
    saved = torch.load(ckpt, weights_only=True)
    if content == "wrong types":
        content = {**saved, "epoch": "1"}
    elif content == "bad history":
        content = {**saved, "history": "{"}
    elif content == "bad model":
        content = {**saved, "model": {"w": [1.0]}}
    if content == "not torch":
        ckpt.write_bytes(b"\x00" * 1000)
    else:
        torch.save(content, ckpt)
    with pytest.raises(FerkitError, match=rf"{CHECKPOINT}: .*{message}"):
        trust_run(checkpoint_run, force=True)
    result = runner.invoke(app, ["trust", str(checkpoint_run), "--force"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_crash_between_sidecar_and_checkpoint_keeps_the_old_checkpoint_usable(
    checkpoint_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferkit import io
    from ferkit.training import checkpoint as module

    saved = _resume(checkpoint_run)
    real = io.write_bytes

    def killed(target: Any, data: bytes) -> None:
        if Path(target).name == module.CHECKPOINT:
            raise KeyboardInterrupt  # as if kill -9 came after the sidecar, before the file
        real(target, data)

    monkeypatch.setattr(io, "write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        module.save_checkpoint(checkpoint_run, {**saved, "epoch": 2})
    monkeypatch.setattr(io, "write_bytes", real)
    assert _resume(checkpoint_run)["epoch"] == 1  # the previous checkpoint still verifies
    module.save_checkpoint(checkpoint_run, {**saved, "epoch": 2})
    assert _resume(checkpoint_run)["epoch"] == 2
    sidecar = json.loads((checkpoint_run / module.SIDECAR).read_text())
    assert len(sidecar["sha256"]) == 1


def test_resume_removes_stale_temp_files_and_says_so(
    checkpoint_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = checkpoint_run / ".checkpoint.pt.ab12cd_3.tmp"
    stale.write_bytes(b"x" * 2048)
    other = checkpoint_run / ".history.json.zz99yy88.tmp"
    other.write_text("[")
    keep = checkpoint_run / ".hidden.tmp"  # not a name atomic_path makes
    keep.write_text("mine")
    _resume(checkpoint_run)
    assert not stale.exists() and not other.exists() and keep.exists()
    err = capsys.readouterr().err
    assert f"removed {stale}" in err and "interrupted write" in err


def test_card_fields_are_checked_before_any_file_is_opened(svm_run: Path) -> None:
    good = _read_card(svm_run)
    for key, value, message in [
        ("image_size", 10**9, r"image_size must be an integer in \[1, 1024\]"),
        ("image_size", "96", "image_size must be an integer"),
        ("color", "cmyk", "color must be 'gray' or 'rgb'"),
        ("classes", "angry", "classes must be a non-empty list"),
        ("canonical", ["angry"], "classes and canonical differ"),
    ]:
        _write_card(svm_run, {**good, key: value})
        with pytest.raises(FerkitError, match=rf"model\.json: {message}"):
            load_run(svm_run)


def test_network_card_must_match_its_architecture(net_run: Path) -> None:
    card = _read_card(net_run)
    _write_card(net_run, {**card, "classes": CLASSES[:2], "canonical": CLASSES[:2]})
    with pytest.raises(FerkitError, match=r"architecture \(3 classes, 3 channel\(s\)\) does not"):
        load_run(net_run, backend="torch")


def test_network_without_checksum_is_refused_on_the_onnx_path_too(net_run: Path) -> None:
    card = _read_card(net_run)
    del card["weights_sha256"]
    card["onnx"] = {"file": "model.onnx", "sha256": "0" * 64}  # no weights_sha256 either
    _write_card(net_run, card)
    for backend in ("auto", "onnx", "torch"):
        with pytest.raises(FerkitError, match="has no weights_sha256"):
            load_run(net_run, backend=backend)
