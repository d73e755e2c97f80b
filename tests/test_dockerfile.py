"""The Dockerfile, linted: no docker daemon runs where the tests do, so nothing builds it here.

What is checked is what would make the container wrong rather than fail to build: the base
image, torch from the CPU index at the Makefile's pin, the package installed with the extras
serve needs, a non-root user, ``ferkit serve`` on 0.0.0.0:8000 with its token taken from the
environment (never baked into the image), a health check that sends that token, and a
.dockerignore that keeps the local environment and runs out of the build context.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from ferkit.cli import app

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile line, continuations joined, comments out."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(p[0].upper(), p[1] if len(p) > 1 else "") for p in pairs]


def args_of(name: str) -> list[str]:
    return [rest for inst, rest in instructions() if inst == name]


def test_dockerfile_builds_a_cpu_image_of_the_checkout() -> None:
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(args_of("RUN"))
    pin = re.search(r"torch==[\d.]+", (ROOT / "Makefile").read_text())
    assert pin and f'pip install --index-url "${{TORCH_INDEX}}" {pin.group()}' in runs
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in [" ".join(s) for s in steps]
    assert "pip install '.[serve,onnx]'" in runs
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"serve", "onnx"} <= set(extras["optional-dependencies"])
    for copied in args_of("COPY"):
        for source in copied.split()[:-1]:
            assert (ROOT / source).exists(), source
    torch_step = next(i for i, s in enumerate(steps) if "torch==" in s[1])
    package_step = next(i for i, s in enumerate(steps) if ".[serve,onnx]" in s[1])
    assert torch_step < package_step  # nothing resolves a CUDA torch from the registry


def test_container_serves_as_a_user_on_all_interfaces_with_the_token() -> None:
    steps = instructions()
    users = args_of("USER")
    assert users and users[-1] not in ("root", "0")
    last_run = max(i for i, s in enumerate(steps) if s[0] == "RUN")
    assert steps.index(("USER", users[-1])) > last_run  # installs as root, serves as the user
    assert args_of("EXPOSE") == ["8000"]
    command = json.loads(args_of("CMD")[-1])  # exec form: signals reach ferkit
    assert command == ["ferkit", "serve", "--host", "0.0.0.0", "--port", "8000"]
    baked = " ".join(args_of("ENV") + args_of("ARG"))
    assert "TOKEN" not in baked  # FERKIT_SERVE_TOKEN comes from `docker run -e`
    help_text = CliRunner().invoke(app, ["serve", "--help"]).output
    assert "--host" in help_text and "--port" in help_text and "--token" in help_text
    (health,) = args_of("HEALTHCHECK")
    assert "/api/health" in health and "'Bearer ' + os.environ.get('FERKIT_SERVE_TOKEN'" in health


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "runs", "demo-out", "build", "dist", "**/__pycache__"} <= ignored
    assert not ignored & {"src", "pyproject.toml", "README.md"}
