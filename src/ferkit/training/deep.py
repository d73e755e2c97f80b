"""``ferkit train``: a registered network trained on a dataset into a run folder.

What the notebook did in Keras, made restartable: augmentation (kornia), Adam, early stopping on
validation accuracy restoring the best weights, ReduceLROnPlateau(0.1, patience 3) on validation
loss. Every epoch ends with an atomic checkpoint (model, optimiser, scheduler, history, early-stop
state), so a run killed at any moment resumes with ``resume=True`` having lost at most the
epoch in progress. Each epoch's shuffling and augmentation are seeded by (seed, epoch), so a
resumed run draws the same batches it would have drawn uninterrupted.

The run folder: ``model.safetensors`` + ``model.json`` (best weights so far, loadable by
``ferkit evaluate`` at any time), ``checkpoint.pt`` (last epoch; loaded with
``weights_only=True`` once its SHA-256 matches ``checkpoint.sha256.json``, see
:mod:`ferkit.training.checkpoint`), ``history.json``, ``curves.png`` and, once finished,
``train.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferkit import io
from ferkit.data.balance import class_weights
from ferkit.data.dataset import Split, load_dataset, peek_format
from ferkit.data.groups import describe, hold_out
from ferkit.data.sharpness import matching_target
from ferkit.data.vocabulary import CANONICAL, require_canonical
from ferkit.data.yolo import find_yaml
from ferkit.errors import FerkitError, OptionError, SplitNotFoundError
from ferkit.models.card import CARD_VERSION, ModelCard
from ferkit.records import TrainSummary
from ferkit.training.checkpoint import CHECKPOINT, load_checkpoint, remove_stale_temps
from ferkit.training.config import (
    PreparedData,
    TrainConfig,
)
from ferkit.training.distributed import spawn
from ferkit.training.history import history_summary
from ferkit.training.loop import Progress, _log
from ferkit.training.recipes import current_name
from ferkit.training.worker import run_worker

DataArg = str | Path | Sequence[str | Path]
# Several datasets without --size: their largest natural side, but no larger than this (the
# affectnet_yolo crops' side; FER2013's 48 px faces are upscaled, not AffectNet's downscaled).
MULTI_MAX_SIZE = 96


def data_paths(data: DataArg) -> list[Path]:
    """The dataset paths of ``data``: one path, or several (``ferkit train A B``)."""
    items = [data] if isinstance(data, str | os.PathLike) else list(data)
    if not items:
        raise FerkitError("no dataset given")
    return [Path(item) for item in items]


@dataclass
class _Source:
    """One dataset's train and validation splits, before they are merged with the others."""

    root: Path
    train: Split
    val: Split
    info: dict[str, Any]


def _load_source(
    path: Path, cfg: TrainConfig, size: int | None, color: str | None, progress: bool,
    class_names: str | None,
) -> tuple[_Source, int, str]:  # fmt: skip
    """A dataset's train split and its validation split (else 10% held out of train)."""
    ds = load_dataset(
        path,
        image_size=size,
        color=color,  # type: ignore[arg-type]
        progress=progress,
        class_names=class_names,
    )
    train = ds.usable_split(cfg.train_split)
    info: dict[str, Any] = {"data": str(ds.root), "skipped": len(ds.skipped)}
    try:
        val = ds.usable_split(cfg.val_split)
        info["val_split"] = val.name
    except SplitNotFoundError:
        train, val, grouping = hold_out(train, cfg.seed, cfg.group_by)
        info["val_split"] = f"{describe(grouping, train.name)}; no {cfg.val_split!r} split"
        info["grouping"] = grouping
        if "warning" in grouping:
            _log(f"warning: {path}: {grouping['warning']}")
    info["train_split"] = train.name
    if cfg.dedupe:
        from ferkit.data.duplicates import dedupe_message, dedupe_train

        train, info["dedupe"] = dedupe_train(ds, train, val)
        _log(f"{ds.root}: {dedupe_message(info['dedupe'])}")
    return _Source(ds.root, train, val, info), ds.image_size, ds.color


def prepare_data(data: DataArg, cfg: TrainConfig, progress: bool = True) -> PreparedData:
    """Load, select classes, hold out validation if needed, balance, and compute statistics.

    Several datasets are trained on together: each is decoded at one common size and colour
    (:func:`common_format`), its labels mapped to the union of their canonical emotion names
    (sorted in canonical order), and the train splits and validation splits concatenated; the
    validation samples remember their dataset, so each dataset's accuracy is reported too.
    """
    paths = data_paths(data)
    if len(paths) == 1:
        source, size, color = _load_source(
            paths[0], cfg, cfg.image_size, cfg.color, progress, cfg.class_names
        )
        train, val = source.train, source.val
        if cfg.classes:
            train, val = train.select_classes(cfg.classes), val.select_classes(cfg.classes)
        sources, val_source = [source], None
    else:
        size, color = common_format(paths, cfg)
        sources = [
            _load_source(p, cfg, size, color, progress, _class_names_for(p, cfg.class_names))[0]
            for p in paths
        ]
        train, val, val_source = _merge(sources, cfg.classes)
    where = ", ".join(str(s.root) for s in sources)
    if len(val) == 0:
        raise FerkitError(f"{where}: the validation split has no sample of the chosen classes")
    if cfg.balance == "undersample":
        train = train.balanced(cfg.margin, cfg.seed)
    if cfg.max_train is not None and cfg.max_train < len(train):
        from ferkit.data.balance import stratified_subset

        train = train.subset(stratified_subset(train.labels, cfg.max_train, seed=cfg.seed))
    if len(train) < cfg.batch_size:
        raise FerkitError(
            f"{where}: {len(train)} training images, fewer than one batch ({cfg.batch_size})"
        )
    weights = None
    if cfg.balance == "weights":
        weights = class_weights(train.labels, len(train.classes)).tolist()
    mean, std = _channel_stats(train.images, cfg.seed)
    info = _data_info(sources)
    parts = None
    if len(sources) > 1:  # each dataset against its own val split, not the mix
        names = _source_names(sources)
        parts = {n: (s.train.images, s.val.images) for n, s in zip(names, sources, strict=True)}
    target, info["sharpness"] = matching_target(
        cfg.match_sharpness, train.images, val.images, cfg.seed, parts=parts
    )
    info.update(
        train_samples=len(train),
        val_samples=len(val),
        train_counts=train.counts(),
        val_counts=val.counts(),
        datasets=_provenance(sources, train, val, val_source),
    )
    return PreparedData(
        torch.from_numpy(train.images),
        torch.from_numpy(train.labels),
        torch.from_numpy(val.images),
        torch.from_numpy(val.labels),
        train.classes,
        train.canonical,
        size,
        color,
        mean,
        std,
        weights,
        info,
        target,
        None if val_source is None else torch.from_numpy(val_source),
        [s["name"] for s in info["datasets"]],
    )


def common_format(paths: Sequence[Path], cfg: TrainConfig) -> tuple[int, str]:
    """The size and colour several datasets are decoded at: ``cfg.image_size`` / ``cfg.color``
    when given, else the largest of their natural sizes up to :data:`MULTI_MAX_SIZE`, and rgb
    when any of them is rgb (colour is information a gray dataset cannot give back)."""
    if cfg.image_size is not None and cfg.color is not None:
        return cfg.image_size, cfg.color
    formats = [peek_format(p, _class_names_for(p, cfg.class_names)) for p in paths]
    size = cfg.image_size or min(MULTI_MAX_SIZE, max(s for s, _ in formats))
    color = cfg.color or ("rgb" if any(c == "rgb" for _, c in formats) else "gray")
    return size, color


def _class_names_for(path: Path, class_names: str | None) -> str | None:
    """``--class-names`` maps numbered class folders; YOLO and CSV datasets name their classes
    themselves, so among several datasets it applies to the class-folder ones only."""
    if class_names is None:
        return None
    if path.is_file() or (path.is_dir() and find_yaml(path) is not None):
        return None
    return class_names


def _canonical_order(names: set[str]) -> list[str]:
    """Canonical emotions in :data:`CANONICAL` order, any other name after them, sorted."""
    known = [c for c in CANONICAL if c in names]
    return known + sorted(names - set(CANONICAL))


def _merge(sources: list[_Source], classes: list[str] | None) -> tuple[Split, Split, np.ndarray]:
    """The sources' train and val splits concatenated, labelled by canonical name (``classes``
    in that order, else the union of the sources' classes), and each val sample's source."""
    if classes:
        targets = [require_canonical(c) for c in classes]
        if len(set(targets)) != len(targets):
            raise OptionError(f"classes {list(classes)} name the same class twice")
        present = {c for s in sources for c in s.train.canonical}
        missing = [c for c in targets if c not in present]
        if missing:
            raise OptionError(
                f"class {missing[0]!r} is not in any of the datasets; they have "
                f"{', '.join(_canonical_order(present))}"
            )
    else:
        targets = _canonical_order({c for s in sources for c in s.train.canonical})
    names = _source_names(sources)
    trains = [_relabel(s.train, targets) for s in sources]
    vals = [_relabel(s.val, targets) for s in sources]
    val_source = np.concatenate([np.full(len(v), i, dtype=np.int64) for i, v in enumerate(vals)])
    return _concat("train", trains, names), _concat("val", vals, names), val_source


def _relabel(split: Split, targets: list[str]) -> Split:
    """``split``'s samples of the ``targets`` classes, labelled by their index in ``targets``."""
    remap = np.array(
        [targets.index(c) if c in targets else -1 for c in split.canonical], dtype=np.int64
    )
    keep = np.flatnonzero(remap[split.labels] >= 0)
    sub = split.subset(keep)
    return replace(sub, labels=remap[sub.labels], classes=targets, canonical=targets)


def _concat(name: str, parts: list[Split], sources: list[str]) -> Split:
    """Splits over the same classes as one; each ref is prefixed with its dataset's name."""
    return Split(
        name,
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]).astype(np.int64),
        [f"{src}:{ref}" for src, p in zip(sources, parts, strict=True) for ref in p.refs],
        list(parts[0].classes),
        list(parts[0].canonical),
    )


def _source_names(sources: list[_Source]) -> list[str]:
    """A short unique name per dataset (its folder; the folder of a data.yaml or CSV file)."""
    names: list[str] = []
    for source in sources:
        root = source.root
        base = root.parent.name if root.is_file() else root.name
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def _data_info(sources: list[_Source]) -> dict[str, Any]:
    """train.json's data fields: one dataset's as before, several as lists/joined splits."""
    if len(sources) == 1:
        return dict(sources[0].info)
    names = _source_names(sources)
    return {
        "data": [s.info["data"] for s in sources],
        "skipped": sum(s.info["skipped"] for s in sources),
        "val_split": "; ".join(
            f"{n}: {s.info['val_split']}" for n, s in zip(names, sources, strict=True)
        ),
        "train_split": "; ".join(
            f"{n}: {s.info['train_split']}" for n, s in zip(names, sources, strict=True)
        ),
        **(
            {"dedupe": {n: s.info["dedupe"] for n, s in zip(names, sources, strict=True)}}
            if any("dedupe" in s.info for s in sources)
            else {}
        ),
    }


def _provenance(
    sources: list[_Source], train: Split, val: Split, val_source: np.ndarray | None
) -> list[dict[str, Any]]:
    """Each dataset trained on: its path, splits and sample counts as trained (after class
    selection and balancing; merged samples' refs start with their dataset's name)."""
    entries = []
    for i, (name, source) in enumerate(zip(_source_names(sources), sources, strict=True)):
        tr, va = train, val
        if val_source is not None:
            tr = train.subset([k for k, ref in enumerate(train.refs) if ref.startswith(f"{name}:")])
            va = val.subset(np.flatnonzero(val_source == i))
        entries.append(
            {
                "name": name,
                "data": source.info["data"],
                "train_split": source.info["train_split"],
                "val_split": source.info["val_split"],
                "grouping": source.info.get("grouping"),  # how a held-out val was drawn
                "skipped": source.info["skipped"],
                "train_samples": len(tr),
                "val_samples": len(va),
                "train_counts": tr.counts(),
                "val_counts": va.counts(),
            }
        )
    return entries


def _channel_stats(images: np.ndarray, seed: int, n: int = 5000) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of [0, 1] pixels on up to ``n`` training images."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(images), min(n, len(images)), replace=False)
    pixels = images[idx].astype(np.float64) / 255.0
    mean = pixels.mean(axis=(0, 1, 2))
    std = np.maximum(pixels.std(axis=(0, 1, 2)), 1e-3)
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


def _check_run_dir(out: Path, resume: bool) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None for a fresh run; never overwrite a finished one."""
    ckpt = out / CHECKPOINT
    if resume:
        if not ckpt.exists():
            if (out / "model.json").is_file():
                raise FerkitError(f"{out}: has a model but no {CHECKPOINT}; nothing to resume")
            return None
        remove_stale_temps(out, _log)  # e.g. a checkpoint write cut short by kill -9
        return load_checkpoint(out)
    if ckpt.exists() or (out / "model.json").is_file():
        raise FerkitError(
            f"{out}: already holds a run; pass --resume to continue it or choose another --out"
        )
    return None


def _same_setup(saved: dict[str, Any], cfg: TrainConfig, out: Path) -> None:
    """A resumed run must be the run that was started (epochs/patience may be extended, and
    ``--ema`` switched on for a run without an average: it starts then). A run with an
    average resumed without ``--ema``, or with another decay, is another run."""
    before = json.loads(saved["config"])
    if isinstance(before.get("augment"), str):  # a run started when "notebook" was "seed"
        before["augment"] = current_name(before["augment"], "augment", warn=False)
    free = {"epochs", "patience", "threads", "device", "nproc", "init"}
    if "ema" not in saved:
        free.add("ema")
    defaults = asdict(TrainConfig())  # a setting added since the run started has its default
    changed = {
        k for k, v in asdict(cfg).items() if k not in free and before.get(k, defaults[k]) != v
    }
    if changed:
        raise FerkitError(
            f"{out / CHECKPOINT}: was started with other settings ({', '.join(sorted(changed))}); "
            "resume with the original ones"
        )


def _same_data(saved: dict[str, Any], paths: list[Path], out: Path) -> None:
    """A resumed run must read the datasets it started with, all of them, in the same order
    (the class order and the validation split depend on them). Checkpoints written before
    the datasets were recorded are not checked."""
    if "data" not in saved:
        return
    before = json.loads(saved["data"])
    now = [str(Path(p).expanduser().resolve()) for p in paths]
    if before != now:
        raise FerkitError(
            f"{out / CHECKPOINT}: was started on other data ({', '.join(before)}); "
            "resume with the original dataset(s)"
        )


def train_network(
    data: DataArg,
    out: str | Path,
    cfg: TrainConfig | None = None,
    *,
    resume: bool = False,
    progress: Progress = True,
    on_batch: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    prepared: PreparedData | None = None,
) -> TrainSummary:
    """Train ``cfg.model`` on ``data`` (one dataset, or several trained on together: see
    :func:`prepare_data`) into ``out``; returns the summary saved as train.json.

    ``progress``: ``True`` draws progress bars and prints a line per epoch, ``"epochs"`` only
    the lines (for logs of background runs, where bars are noise), ``False`` neither.
    ``on_batch(epoch, batch)`` and ``on_epoch(history_row)`` are hooks (single process only),
    run after the standard callbacks (:mod:`ferkit.training.callbacks`); an exception from
    ``on_epoch`` stops training after that epoch's checkpoint, which is how a tuner prunes a
    trial. ``prepared`` reuses data already loaded by :func:`prepare_data`.
    """
    cfg = cfg or TrainConfig()
    cfg.check()
    out = Path(out)
    saved = _check_run_dir(out, resume)
    if saved is not None:
        _same_setup(saved, cfg, out)
        _same_data(saved, data_paths(data), out)
        if saved.get("finished") and saved["epoch"] >= cfg.epochs:
            done = out / "train.json"
            return TrainSummary.from_dict(json.loads(done.read_text()), done)
    if (on_batch or on_epoch) and cfg.nproc > 1:
        raise FerkitError("training hooks run in a single process only (nproc=1)")
    prepared = prepared or prepare_data(data, cfg, progress is True)
    if cfg.teacher:
        _add_teachers(cfg, prepared, out, progress, resuming=saved is not None)
    card = _card(out, cfg, prepared)
    start = time.perf_counter()
    if cfg.nproc > 1:
        spawn(cfg, prepared, card, out, saved, progress)
    else:
        run_worker(0, 1, cfg, prepared, card, out, saved, progress, on_batch, on_epoch)
    state = load_checkpoint(out)
    summary = {
        "config": asdict(cfg),
        **prepared.info,
        "classes": prepared.classes,
        "image_size": prepared.image_size,
        "color": prepared.color,
        **history_summary(json.loads(state["history"])),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "stopped_early": bool(state.get("stopped_early")),
        "seconds_this_call": round(time.perf_counter() - start, 1),
        "parameters": state.get("parameters"),
    }
    io.write_json(out / "train.json", summary)
    return TrainSummary.from_dict(summary, out / "train.json")


def _add_teachers(
    cfg: TrainConfig, prepared: PreparedData, out: Path, progress: Progress, resuming: bool
) -> None:
    """Give ``prepared`` its teachers: their soft targets on the training images (computed, or
    read back on resume), with how they see those images in its info (train.json); or, with
    ``--distill-views augmented``, the teachers themselves, to score each augmented batch."""
    from ferkit.training.distill import online_teachers, teacher_report, teacher_targets

    teachers = cfg.teacher or []
    if cfg.distill_views == "augmented":
        prepared.teachers, identities = online_teachers(teachers, prepared, out, resuming)
        prepared.info["distillation"] = {"teachers": identities, "views": "augmented"}
        return
    prepared.soft_train, identities = teacher_targets(
        teachers, prepared, out, progress is True, resuming=resuming
    )
    report = teacher_report(prepared.soft_train, prepared.y_train)
    prepared.info["distillation"] = {"teachers": identities, "views": "clean", **report}
    if progress:
        accuracy, top = report["teacher_train_accuracy"], report["teacher_mean_top_probability"]
        _log(
            f"teachers {', '.join(teachers)}: {accuracy:.1%} right on the training images, "
            f"mean top probability {top:.2f}"
        )


def _card(out: Path, cfg: TrainConfig, prepared: PreparedData) -> ModelCard:
    """The run's card before training: what to feed it and how it was trained (the loop adds
    the weights, their checksum, the architecture and the best epoch as it saves them)."""
    keys = ("name", "data", "train_split", "val_split", "grouping", "train_samples",
            "val_samples", "train_counts", "val_counts")  # fmt: skip
    card = ModelCard(
        card_version=CARD_VERSION,
        kind="torch",
        name=out.name,
        classes=prepared.classes,
        canonical=prepared.canonical,
        image_size=prepared.image_size,
        color=prepared.color,
        mean=prepared.mean,
        std=prepared.std,
        trained_on=prepared.info["data"],  # a list for several datasets
        train_split=prepared.info["train_split"],
        val_split=prepared.info["val_split"],
        datasets=[{k: d[k] for k in keys} for d in prepared.info["datasets"]],
        date=time.strftime("%Y-%m-%d", time.gmtime()),
        training={k: v for k, v in asdict(cfg).items() if k not in ("threads", "device")},
        dedupe=prepared.info.get("dedupe"),
    )
    if "distillation" in prepared.info:  # who taught it, by weights (a name may move on)
        return card.updated(teachers=prepared.info["distillation"]["teachers"])
    return card
