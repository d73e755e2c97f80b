"""The error policy (ferkit.errors): user errors are FerkitErrors (ValueErrors, as sklearn's
estimators raise), the CLI turns exactly those into one ``error:`` line and exit code 2, and a
bug keeps its traceback."""

from __future__ import annotations

import ast
import errno
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ferkit import errors
from ferkit.cli import app
from ferkit.errors import (
    DatasetError,
    FerkitError,
    InputError,
    ModelFileError,
    OptionError,
    SplitNotFoundError,
)
from ferkit.io import WriteError

runner = CliRunner()
SRC = Path(errors.__file__).parent


def test_ferkit_errors_are_value_errors_and_keep_their_other_bases() -> None:
    for cls in (FerkitError, OptionError, InputError, ModelFileError, DatasetError):
        assert issubclass(cls, ValueError), cls
    with pytest.raises(ValueError, match="bad"):  # sklearn-style callers catch ValueError
        raise OptionError("bad")
    full = WriteError(errno.ENOSPC, "cannot write to r.json: No space left on device")
    assert isinstance(full, OSError) and isinstance(full, FerkitError)
    assert full.errno == errno.ENOSPC  # OSError's fields survive ValueError in the MRO
    assert str(full) == "cannot write to r.json: No space left on device"
    assert str(WriteError("cannot write to x: it is a file")) == "cannot write to x: it is a file"
    missing = SplitNotFoundError("no split 'val'; this dataset has all")
    assert isinstance(missing, KeyError) and isinstance(missing, OptionError)
    assert str(missing) == "no split 'val'; this dataset has all"  # no KeyError quotes


def test_a_ferkit_error_in_any_command_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ferkit models` had no handler of its own: the one handler covers every command."""
    import ferkit.weights

    def refuse() -> None:
        raise ModelFileError("weights/x/model.json: unreadable model card")

    monkeypatch.setattr(ferkit.weights, "shipped_listing", refuse)
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "error: weights/x/model.json: unreadable model card"
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("command", "module", "function", "bug"),
    [
        (["inspect", "data"], "ferkit.reports.inspect", "inspect_dataset", ValueError),
        (["trust", "run"], "ferkit.training.checkpoint", "trust_run", OSError),
        (["models"], "ferkit.weights", "shipped_listing", ZeroDivisionError),
    ],
)
def test_a_bug_in_a_command_is_not_swallowed(
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    module: str,
    function: str,
    bug: type[Exception],
) -> None:
    """A plain ValueError or OSError is a bug, not a user error: it propagates (a traceback),
    where the per-command handlers used to print it as ``error: ...``."""
    import importlib

    def broken(*args: object, **kwargs: object) -> None:
        raise bug("an internal invariant broke")

    monkeypatch.setattr(importlib.import_module(module), function, broken)
    result = runner.invoke(app, command)
    assert type(result.exception) is bug, result.output
    assert result.exit_code == 1
    assert "error:" not in result.output


def _console_script(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``ferkit models`` through the real entry point (``ferkit.cli:run``) after ``code``."""
    script = (
        f"import sys\n{code}\nsys.argv = ['ferkit', 'models']\nfrom ferkit.cli import run\nrun()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_console_script_prints_a_bug_s_traceback_and_a_user_error_s_line(
    tmp_path: Path,
) -> None:
    bug = _console_script("import ferkit.weights as w; w.shipped_listing = lambda: 1 / 0", tmp_path)
    assert bug.returncode == 1
    assert "Traceback" in bug.stderr and "ZeroDivisionError" in bug.stderr, bug.stderr
    user = _console_script(
        "import ferkit.weights as w\n"
        "from ferkit.errors import OptionError\n"
        "def refuse(): raise OptionError('--x: must be > 0')\n"
        "w.shipped_listing = refuse",
        tmp_path,
    )
    assert user.returncode == 2, user.stderr
    assert user.stderr.strip() == "error: --x: must be > 0"


def test_representative_user_errors_are_ferkit_errors_naming_the_file_or_setting(
    tmp_path: Path,
) -> None:
    import ferkit
    from ferkit.data.balance import undersample
    from ferkit.features import create_extractor
    from ferkit.inference.inputs import read_image

    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(InputError, match=r"notes\.jpg: not a decodable image"):
        read_image(bad)
    with pytest.raises(DatasetError, match=r"no-such-folder: does not exist"):
        ferkit.load_dataset(tmp_path / "no-such-folder")
    with pytest.raises(OptionError, match="unknown model 'resnet99'; did you mean 'resnet50'"):
        ferkit.create_model("resnet99", num_classes=7)
    with pytest.raises(ModelFileError, match=r"not-a-run: not a ferkit run \(no model.json\)"):
        ferkit.load_run(tmp_path / "not-a-run")
    with pytest.raises(OptionError, match=r"margin must be in 0\.\.1"):
        undersample(np.array([0, 0, 1]), margin=5)
    with pytest.raises(OptionError, match="unknown feature extractor 'hogg'"):
        create_extractor("hogg")


def test_library_errors_on_user_input_are_ferkit_errors() -> None:
    """What scikit-learn, torch or float() would refuse with their own ValueError or
    RuntimeError (a traceback now that the CLI catches only FerkitError) is said first."""
    from ferkit.data.balance import stratified_subset
    from ferkit.models.svm import SVMClassifier
    from ferkit.training.config import resolve_device

    x, y = np.random.default_rng(0).normal(size=(6, 4)), np.array([0, 1] * 3)
    with pytest.raises(OptionError, match="gamma must be scale or a number, not 'abc'"):
        SVMClassifier(gamma="abc").fit(x, y)
    with pytest.raises(OptionError, match="unknown device 'foo'"):
        resolve_device("foo")
    with pytest.raises(FerkitError, match="leaves 2, fewer than the 3 classes"):
        stratified_subset(np.array([0, 1, 2] * 4), 10)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_serve_on_a_port_in_use_is_one_line_before_the_model_loads(busy_port: int) -> None:
    pytest.importorskip("fastapi")
    result = runner.invoke(
        app, ["serve", "--model", "no-such-model", "--port", str(busy_port)]
    )  # the model name is never looked at: the port is checked first
    assert result.exit_code == 2, result.output
    assert f"error: cannot listen on 127.0.0.1:{busy_port}: Address already in use" in (
        " ".join(result.output.split())
    )


# Plain exceptions that remain in src/ferkit: internal invariants (a caller's bug, not a
# user's input), or control flow caught a few lines away. A new user-facing failure is a
# FerkitError (or a subclass) instead; add one here only for a bug check, with the reason.
INTERNAL = {
    "an interval needs at least one item",  # evaluate refuses an empty split first
    "McNemar's test needs the same items",  # compare pairs the items first
    "feature maps must be (C, h, w)",  # explain passes a layer's output
    "is not a JSON-serialisable param",  # an extractor's own parameters
    "model card lacks",  # the card ferkit itself builds before saving
    "sharpness matching was built for",  # the network resizes its input first
    "resampling was built for",  # same: inputs reach the network at its image_size
    "no input side up to",  # a registered architecture that shrinks any input to nothing
    "is already registered",  # register_model used twice: a programming error
    "must take (num_classes, in_channels, image_size",  # register_model's contract
    "labels must be one-dimensional",  # labels come from a loaded dataset
    "labels must be in 0..",  # same
    "need at least 5 to embed",  # caught: the figure is listed as not drawn
    "unknown embedding",  # same
    "no duplicate pairs found",  # same
    "StudyConfig left",  # __post_init__ fills every field
    "is not JSON serializable",  # io's json `default`: json.dumps's own protocol is a TypeError
}
# Whole messages a protocol requires: Record.__getitem__ is a Mapping's, so a missing key is a
# KeyError(key), as `card.get(...)` and `in` rely on.
PROTOCOL = {"key"}
PLAIN = {"ValueError", "RuntimeError", "OSError", "FileNotFoundError", "TypeError", "KeyError"}


def _plain_raises() -> Iterator[tuple[str, str]]:
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            if isinstance(func, ast.Name) and func.id in PLAIN:
                message = ast.unparse(node.exc.args[0]) if node.exc.args else ""
                yield f"{path.relative_to(SRC)}:{node.lineno}", message


def test_user_facing_failures_are_not_plain_exceptions() -> None:
    unexpected = [
        f"{where}: {message}"
        for where, message in _plain_raises()
        if not any(known in message for known in INTERNAL) and message not in PROTOCOL
    ]
    assert not unexpected, "raise a FerkitError (ferkit.errors) for a user's mistake:\n" + (
        "\n".join(unexpected)
    )
