"""Options declared once (issue 21, item 1): each command's flags are its config's fields, a
config writes the command line that rebuilds it, and ``--config FILE.yaml`` sets any field."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest
import typer
from typer.testing import CliRunner

from ferkit.cli import app
from ferkit.errors import FerkitError
from ferkit.options import choices, default_of, field_of, flag, load_settings, settable
from ferkit.records import TrainSummary, TuneResult
from ferkit.study.config import StudyConfig
from ferkit.training.config import TrainConfig, TuneConfig
from ferkit.training.svm import SVMConfig

runner = CliRunner()
# options of a command that are not settings: where to write, how to print, the file itself
NOT_SETTINGS = {"--out", "--json", "--config", "--resume", "--help"}
# CLI spellings of a field's default / extra choices: color "auto" is None, "seed" an old name
CLI_DEFAULT = {"color": "auto"}
EXTRA_CHOICES = {"color": {"auto"}, "augment": {"seed"}, "recipe": {"seed"}}


def _options(command: str) -> dict[str, Any]:
    """The click options of ``ferkit COMMAND``, by their first long flag."""
    group = typer.main.get_command(app)
    params = group.commands[command].params  # type: ignore[attr-defined]
    return {p.opts[0]: p for p in params if p.param_type_name == "option"}


def _cli_default(f: dataclasses.Field[Any]) -> Any:
    value = default_of(f)
    if f.name in CLI_DEFAULT:
        return CLI_DEFAULT[f.name]
    if isinstance(value, list):  # comma-separated on the command line
        return ",".join(value)
    if isinstance(value, dict):  # repeatable key=value
        return None
    return value


def _offered(option: Any) -> tuple[Any, ...] | None:
    """The values a choice option accepts (its type: a Literal), or None for a free option."""
    annotation = option.type_descriptor.annotation
    return get_args(annotation) if get_origin(annotation) is Literal else None


def _check_option(cls: type, f: dataclasses.Field[Any], option: Any) -> None:
    """The option sets field ``f``: the CLI reads its help, default, limits and choices from the
    field, so what can still go wrong is wiring (a parameter given another field's default or
    choices), and that is what is checked; help texts: test_help_is_the_fields."""
    assert option.default == _cli_default(f), f.name
    assert (option.min, option.max) == (f.metadata["min"], f.metadata["max"]), f.name
    allowed = choices(cls, f.name)
    offered = _offered(option)
    assert (offered is None) == (allowed is None), f.name
    if allowed is not None and offered is not None:
        assert set(offered) == set(allowed) | EXTRA_CHOICES.get(f.name, set()), f.name


@pytest.mark.parametrize(
    ("command", "cls"), [("train", TrainConfig), ("svm", SVMConfig), ("study", StudyConfig)]
)
def test_flags_are_the_config_fields(command: str, cls: type) -> None:
    options = _options(command)
    fields = {flag(f): f for f in settable(cls)}
    assert set(options) - NOT_SETTINGS == set(fields)  # every field settable, nothing else
    for name, f in fields.items():
        _check_option(cls, f, options[name])


def test_tune_flags_are_its_fields_and_train_fields() -> None:
    options = _options("tune")
    own = {flag(f): f for f in settable(TuneConfig)}
    train = {flag(f): f for f in settable(TrainConfig)}
    assert set(own) <= set(options)
    for name, option in options.items():
        if name in NOT_SETTINGS:
            continue
        cls = TuneConfig if name in own else TrainConfig
        f = own.get(name) or train[name]  # a KeyError here: a flag that sets nothing
        _check_option(cls, f, option)


@pytest.mark.parametrize(
    ("command", "cls", "name"),
    [
        ("train", TrainConfig, "lr"),
        ("train", TrainConfig, "image_size"),
        ("train", TrainConfig, "augment"),
        ("svm", SVMConfig, "group_by"),  # svm's own text, not train's GROUP_BY_HELP
        ("svm", SVMConfig, "C"),
        ("tune", TuneConfig, "trials"),
        ("tune", TrainConfig, "batch_size"),
        ("study", StudyConfig, "recipe"),
        ("study", StudyConfig, "model_kwargs"),
    ],
)
def test_help_is_the_fields(command: str, cls: type, name: str) -> None:
    f = field_of(cls, name)
    assert _options(command)[flag(f)].help == f.metadata["help"]
    shown = " ".join(runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"}).output.split())
    assert " ".join(f.metadata["help"].split()[:4]) in shown


def test_tune_epochs_keeps_its_own_help() -> None:
    """tune's --epochs is the epochs of best.json's command, not of each trial (max-epochs)."""
    help_text = _options("tune")["--epochs"].help
    assert help_text == "Epochs of the final command in best.json."
    assert help_text != field_of(TrainConfig, "epochs").metadata["help"]


@pytest.mark.parametrize(
    ("command", "cls", "name"),
    [
        ("train", TrainConfig, "color"),
        ("train", TrainConfig, "balance"),
        ("train", TrainConfig, "augment"),
        ("train", TrainConfig, "tta"),
        ("svm", SVMConfig, "method"),
        ("svm", SVMConfig, "features"),
        ("study", StudyConfig, "recipe"),
        ("study", StudyConfig, "svm_method"),
    ],
)
def test_choices_are_the_literals_args(command: str, cls: type, name: str) -> None:
    """In order too: the help's <a|b|c> lists the Literal as written, 'auto' (None) first and
    a deprecated old name last."""
    f = field_of(cls, name)
    hint = get_type_hints(cls)[name]
    literal = next(a for a in (*get_args(hint), hint) if get_origin(a) is Literal)
    auto = ("auto",) if type(None) in get_args(hint) else ()
    expected = (*auto, *get_args(literal), *f.metadata["aliases"])
    assert _offered(_options(command)[flag(f)]) == expected


def test_the_literals_are_the_choices_the_code_accepts() -> None:
    from ferkit.data.sharpness import MODES
    from ferkit.features import EXTRACTORS
    from ferkit.study.config import Recipe, SvmMethod
    from ferkit.training import config, svm
    from ferkit.training.augment import AUGMENTATIONS
    from ferkit.training.recipes import RECIPES

    assert get_args(config.Augment) == AUGMENTATIONS and get_args(config.Sharpness) == MODES
    assert set(get_args(svm.Features)) == set(EXTRACTORS)
    assert get_args(Recipe) == tuple(RECIPES) and get_args(SvmMethod) == get_args(svm.Method)


def _train_calls(monkeypatch: pytest.MonkeyPatch) -> list[TrainConfig]:
    import ferkit.training.deep as deep

    seen: list[TrainConfig] = []

    def fake(data: Any, out: Any, cfg: TrainConfig, **_: Any) -> TrainSummary:
        seen.append(cfg)
        return TrainSummary()

    monkeypatch.setattr(deep, "train_network", fake)
    return seen


def _invoke(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output


def test_train_config_round_trips_through_its_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _train_calls(monkeypatch)
    cfg = TrainConfig(
        model="convnet", model_kwargs={"width": 0.5, "act": "relu"}, image_size=32,
        color="gray", classes=["happiness", "sadness"], class_names="rafdb", balance="weights",
        margin=10, epochs=3, batch_size=16, lr=0.0123, weight_decay=1e-4, optimizer="sgd",
        schedule="cosine", plateau_factor=0.5, plateau_patience=2, patience=4,
        augment="strong", label_smoothing=0.1, mixup=0.2, ema=0.99, seed=7,
        device="cpu", bf16=False,
        channels_last=False, train_split="training", val_split="test", max_train=100,
        group_by="S(\\d+)_", init=str(tmp_path / "init"), threads=1, nproc=2,
        match_sharpness="off", resample_via=224, tta="flip", dedupe=True,
        teacher=["fer2013", str(tmp_path / "t")], distill=0.7, distill_temperature=4.0,
        distill_views="augmented",
    )  # fmt: skip
    off_default = {f.name for f in dataclasses.fields(TrainConfig)}
    off_default -= {k for k, v in dataclasses.asdict(cfg).items() if v == getattr(TrainConfig(), k)}
    assert off_default == {f.name for f in dataclasses.fields(TrainConfig)}  # all exercised
    _invoke(["train", str(tmp_path), "--out", str(tmp_path / "r"), *cfg.to_argv()])
    assert seen == [cfg]
    _invoke(["train", str(tmp_path), "--out", str(tmp_path / "r"), *TrainConfig().to_argv()])
    assert seen[-1] == TrainConfig() and TrainConfig().to_argv() == []


def test_svm_and_study_configs_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ferkit.study
    import ferkit.training.svm as svm

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(svm, "train_svm", lambda *a, **k: calls.append(k) or {"method": "x"})
    cfg = SVMConfig(
        features="raw", network="run", method="exact", pca_components=8, kernel="linear",
        C=2.5, gamma="0.1", search=False, search_on="train", search_size=50, margin=3,
        image_size=24, color="rgb", match_sharpness="on", dedupe=True, group_by="x(\\d)",
        seed=2,
    )  # fmt: skip
    runner.invoke(app, ["svm", str(tmp_path), "--out", str(tmp_path / "s"), *cfg.to_argv()])
    expected = cfg.train_kwargs()
    assert {k: calls[0][k] for k in expected} == expected and expected["params"]["gamma"] == 0.1

    studies: list[StudyConfig] = []
    monkeypatch.setattr(ferkit.study, "run_study", lambda c, log: studies.append(c) or {})
    study = StudyConfig(
        tmp_path, tmp_path / "o", quick=True, recipe="ferkit", models=["fernet"],
        features=["hog"], seed=1, epochs=2, max_train=20, max_val=20, search_size=30,
        batch_size=8, image_size=32, explain_images=1, threads=1, group_by="a(\\d)",
        happy_sad=False, dedupe=True, model_kwargs={"fernet": {"width": 0.5}},
        embed_samples=9, svm_method="fast", patience=2,
    )  # fmt: skip
    runner.invoke(app, ["study", str(tmp_path), "--out", str(tmp_path / "o"), *study.to_argv()])
    assert studies == [study]


def test_tune_command_line_and_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ferkit.training.tune as tune

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tune, "tune", lambda *a, **k: calls.append(k) or TuneResult())
    file = tmp_path / "tune.yaml"
    file.write_text("trials: 3\nmax-epochs: 2\nlr: 0.5\nmodel: convnet\n")
    settings = TuneConfig(model="cnn10", trials=4, timeout=9.0, seed=5)
    args = ["tune", str(tmp_path), "--out", str(tmp_path / "t"), "--config", str(file)]
    _invoke([*args, *settings.to_argv()])
    call = calls[0]
    assert (call["model"], call["trials"], call["max_epochs"]) == ("cnn10", 4, 2)
    assert call["timeout"] == 9.0 and call["seed"] == 5
    assert call["base"].lr == 0.5 and call["base"].seed == 5 and call["base"].model == "cnn10"


def test_config_file_sets_fields_and_flags_override_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _train_calls(monkeypatch)
    file = tmp_path / "train.yaml"
    file.write_text(
        "lr: 0.01\nbatch-size: 16\nmodel: convnet\nclasses: happiness,sadness\n"
        "model_kwargs: {width: 0.5}\nplateau_factor: 0.3\ncolor: gray\nbf16: false\n"
    )
    _invoke(["train", str(tmp_path), "-o", str(tmp_path / "r"), "--config", str(file),
             "--lr", "0.02", "--size", "32"])  # fmt: skip
    cfg = seen[0]
    assert cfg.lr == 0.02 and cfg.image_size == 32  # the command line wins
    assert (cfg.batch_size, cfg.model, cfg.classes) == (16, "convnet", ["happiness", "sadness"])
    assert cfg.model_kwargs == {"width": 0.5} and cfg.plateau_factor == 0.3
    assert cfg.color == "gray" and cfg.bf16 is False
    # an option typed at its default value still wins over the file
    _invoke(["train", str(tmp_path), "-o", str(tmp_path / "r"), "--config", str(file),
             "--batch-size", "64"])  # fmt: skip
    assert seen[-1].batch_size == 64

    study = tmp_path / "study.yaml"
    study.write_text("models: [fernet]\nquick: true\nrecipe: ferkit\narg: {fernet: {width: 1}}\n")
    studies: list[StudyConfig] = []
    import ferkit.study

    monkeypatch.setattr(ferkit.study, "run_study", lambda c, log: studies.append(c) or {})
    runner.invoke(app, ["study", str(tmp_path), "-o", str(tmp_path / "o"), "--config", str(study)])
    assert studies[0].models == ["fernet"] and studies[0].quick and studies[0].recipe == "ferkit"
    assert studies[0].model_kwargs == {"fernet": {"width": 1}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("weight_decai: 0.1\n", "unknown setting 'weight_decai'; did you mean 'weight_decay'?"),
        ("epochs: ten\n", "epochs must be an integer, not str 'ten'"),
        ("max_train: 1.5\n", "max_train must be an integer or null, not float 1.5"),
        ("optimizer: adamm\n", "optimizer must be one of 'adam', 'adamw', 'sgd', not 'adamm'; did"),
        ("color: 3\n", "color must be one of 'rgb', 'gray' or null, not int 3"),
        # the option's limits hold for the file too
        ("epochs: 0\n", "epochs must be at least 1, not 0"),
        ("batch-size: 1\n", "batch-size must be at least 2, not 1"),
        ("size: 4096\n", "size must be at most 1024, not 4096"),
        ("nproc: 0\n", "nproc must be at least 1, not 0"),
        ("- lr\n", "a config file is a mapping of setting: value"),
        ("lr: [\n", "not valid YAML"),
    ],
)
def test_a_bad_config_file_names_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(FerkitError) as caught:
        load_settings(file, TrainConfig)
    assert str(caught.value).startswith(f"{file}: ") and message in str(caught.value)
    result = runner.invoke(app, ["train", str(tmp_path), "-o", str(tmp_path / "r"),
                                 "--config", str(file)])  # fmt: skip
    assert result.exit_code == 2 and message in " ".join(result.stderr.split())


def test_choice_flags_refuse_a_value_outside_the_literal(tmp_path: Path) -> None:
    for command, option in (("svm", "--method"), ("study", "--svm-method"), ("train", "--tta")):
        result = runner.invoke(app, [command, str(tmp_path), "-o", str(tmp_path), option, "nope"])
        assert result.exit_code == 2 and "is not one of" in result.stderr, command


def test_best_json_command_is_train_to_argv(tmp_path: Path) -> None:
    from ferkit.training.tune import train_command

    cfg = TrainConfig(model="cnn10", model_kwargs={"dense_units": 64}, lr=0.01, dedupe=True)
    command = train_command(tmp_path / "d", tmp_path / "o", cfg)
    assert command.startswith(f"ferkit train {tmp_path / 'd'} --out {tmp_path / 'o'} --model cnn10")
    assert "--arg dense_units=64 --epochs 50 --batch-size 64 --lr 0.01" in command
    assert command.endswith("--dedupe")  # a flag, never "--dedupe true"
    assert json.loads(json.dumps(command)) == command


def test_study_and_tune_files_keep_their_limits(tmp_path: Path) -> None:
    """Each config's own limits: study's max_train is at least 10, tune's trials at least 1
    (and a tune file's train settings keep TrainConfig's)."""
    cases = [
        ("max_train: 5\n", (StudyConfig,), "max_train must be at least 10, not 5"),
        ("max_train: 5\n", (TrainConfig,), None),  # train's subset has no floor
        ("trials: 0\n", (TuneConfig, TrainConfig), "trials must be at least 1, not 0"),
        ("batch_size: 1\n", (TuneConfig, TrainConfig), "batch_size must be at least 2, not 1"),
        ("image_size: 8\n", (StudyConfig,), "image_size must be at least 16, not 8"),
        ("epochs: null\n", (StudyConfig,), None),  # None: the preset's, never under a limit
    ]
    file = tmp_path / "limits.yaml"
    for text, classes, message in cases:
        file.write_text(text)
        if message is None:
            load_settings(file, *classes)
            continue
        with pytest.raises(FerkitError, match=f"^{re.escape(str(file))}: {message}$"):
            load_settings(file, *classes)
