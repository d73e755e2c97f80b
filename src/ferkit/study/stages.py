"""Resumable stages: each one records what it did in ``stage.json`` beside its outputs.

A study is hours of work in full mode, and a laptop sleeps or a job gets killed. So every stage
writes ``stage.json`` (status, seconds, parameters, the equivalent ``ferkit`` commands) when it
starts and when it ends; a re-run skips a stage whose record says ``done`` (or ``skipped``) with
the same parameters, redoes it from scratch when the parameters changed, and simply runs it
again (network training resumes from its checkpoint) when the record says it never finished.
An ordinary exception fails the stage, not the study: it is recorded and the next stage runs.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ferkit import io

STAGE_FILE = "stage.json"
FINAL = ("done", "skipped")


class StageSkipped(Exception):
    """Raised by a stage's work to say it does not apply (the reason is recorded)."""


def plain(obj: Any) -> Any:
    """JSON round trip, so tuples and Paths compare equal to what was read back."""
    return json.loads(json.dumps(obj, default=str))


def utc_now() -> str:
    """A second-resolution UTC timestamp, as every study record writes them."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_record(folder: Path) -> dict[str, Any] | None:
    """The stage's last record, or None when it never ran (or the record is unreadable)."""
    try:
        return json.loads((folder / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Stage:
    """One unit of work: where its outputs go, what decides them, how to redo it by hand."""

    name: str
    folder: Path
    params: dict[str, Any]
    work: Callable[[], dict[str, Any] | None]
    commands: list[str] = field(default_factory=list)
    title: str = ""


def run_stage(stage: Stage, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run ``stage`` unless its record says it is done with the same parameters.

    Returns the record (also in ``stage.json``), with ``reused`` true when it was skipped now.
    """
    params = plain(stage.params)
    old = read_record(stage.folder)
    if old and old.get("status") in FINAL and old.get("params") == params:
        log(f"{stage.name}: {old['status']} before ({old.get('seconds', 0)} s), reused")
        return {**old, "reused": True}
    if old and old.get("params") != params and stage.folder.exists():
        shutil.rmtree(stage.folder)  # outputs of other settings would be mistaken for these
    record: dict[str, Any] = {
        "stage": stage.name,
        "title": stage.title or stage.name,
        "status": "running",
        "started": utc_now(),
        "params": params,
        "commands": stage.commands,
        "attempts": (old or {}).get("attempts", 0) + 1
        if old and old.get("params") == params
        else 1,
    }
    io.write_json(stage.folder / STAGE_FILE, record)
    log(f"{stage.name}: running")
    start = time.perf_counter()
    try:
        result = stage.work() or {}
        record.update(status="done", result=plain(result))
    except StageSkipped as why:
        record.update(status="skipped", reason=str(why))
    except Exception as exc:  # a stage's failure is recorded; the study goes on
        record.update(
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=8),
        )
    record.update(seconds=round(time.perf_counter() - start, 2), finished=utc_now())
    io.write_json(stage.folder / STAGE_FILE, record)
    detail = record.get("error") or record.get("reason") or ""
    log(f"{stage.name}: {record['status']} in {record['seconds']} s {detail}".rstrip())
    return {**record, "reused": False}
