"""What a layout reader returns before any pixel is decoded: samples, classes, problems.

Readers only walk the tree and parse labels; decoding (slow, cached, parallel) happens once,
in one place, for every file-based layout.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.data.images import Box
from ferkit.data.problems import Problem


@dataclass(frozen=True)
class Entry:
    """One sample to decode: an image file and its label index in the dataset's class list;
    ``box`` crops one face out of it (a YOLO detection label, ``part`` its line in the label
    file), None takes the whole image."""

    path: str
    label: int
    box: Box | None = None
    part: int | None = None

    @property
    def ref(self) -> str:
        """Where the sample came from: the file, or ``file#boxN`` for the face on line N."""
        return self.path if self.part is None else f"{self.path}#box{self.part}"


@dataclass
class ScannedSplit:
    """A split found on disk: files to decode (file layouts) or decoded pixels (CSV)."""

    name: str
    entries: list[Entry] = field(default_factory=list)
    pixels: np.ndarray | None = None
    labels: np.ndarray | None = None
    refs: list[str] | None = None
    role: str | None = None
    unreadable: list[str] = field(default_factory=list)  # classes whose folder was unreadable


@dataclass
class Scan:
    """The result of reading a layout: its classes in dataset order, splits and problems."""

    layout: str
    root: Path
    classes: list[str]
    splits: dict[str, ScannedSplit]
    problems: list[Problem] = field(default_factory=list)
    source: str | None = None


def list_files(folder: Path) -> list[os.DirEntry[str]]:
    """Directory entries sorted by name (the notebook sorts too, so order is reproducible)."""
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def read_folder(
    folder: str | os.PathLike[str], problems: list[Problem], split: str | None = None
) -> list[os.DirEntry[str]] | None:
    """:func:`list_files`, or None with an ``unreadable-folder`` problem when the folder cannot
    be listed (no permission, gone): an unreadable folder is never mistaken for an empty one."""
    try:
        return list_files(Path(folder))
    except OSError as exc:
        reason = f"cannot read folder: {exc.strerror or exc}; its files are skipped"
        problems.append(Problem("unreadable-folder", str(folder), reason, split=split))
        return None


def safe_subdirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` for probing a layout: a folder that cannot be listed has none,
    and a link loop is not a folder (the scan proper reports both)."""
    try:
        entries = list_files(folder)
    except OSError:
        return []
    return [Path(e.path) for e in entries if entry_kind(e)[0] == "dir"]


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def path_kind(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``("dir", "")``, ``("file", "")`` (a regular file) or a problem kind and its reason.

    Links are followed; ``os.stat`` never blocks, so a FIFO named ``.jpg`` is found here
    instead of hanging the ``open()`` that would read it."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink-loop", "symbolic link loop (the link leads back to itself)"
        if os.path.islink(path):
            return "unreadable-file", "cannot read file: broken link (its target does not exist)"
        return "unreadable-file", f"cannot read file: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return "dir", ""
    if stat.S_ISREG(st.st_mode):
        return "file", ""
    return "not-a-regular-file", f"{_file_type(st.st_mode)}, not a regular file; not read"


def entry_kind(entry: os.DirEntry[str]) -> tuple[str, str]:
    """:func:`path_kind` of a folder entry. A plain file or folder is told by the type the
    folder listing already returned (no system call per file); links, FIFOs and the like are
    stat'ed (``DirEntry.is_dir`` would raise on a link loop)."""
    try:
        if not entry.is_symlink():
            if entry.is_file(follow_symlinks=False):
                return "file", ""
            if entry.is_dir(follow_symlinks=False):
                return "dir", ""
    except OSError:
        pass
    return path_kind(entry.path)


def _parent_keys(folder: Path) -> tuple[tuple[int, int], ...]:
    """(device, inode) of every folder above ``folder``'s real path: a link inside it to one of
    them (``up -> ..``) would read the whole tree again, so it is a loop too."""
    keys = []
    real = Path(os.path.realpath(folder))
    for parent in real.parents:
        try:
            st = os.stat(parent)
        except OSError:
            continue
        keys.append((st.st_dev, st.st_ino))
    return tuple(keys)


def file_key(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(device, inode) of what ``path`` names (links followed), None when it cannot be stat'ed:
    the identity of a file or folder that never raises on a link loop, unlike ``resolve``."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def walk_files(
    folder: Path,
    problems: list[Problem],
    split: str | None = None,
    follow_links: bool = True,
    exclude: Collection[tuple[int, int]] = (),
) -> list[str]:
    """Every regular file below ``folder``: its own files sorted, then each sub-folder's, in
    name order (``os.walk``'s order). Nothing is skipped silently: a folder that cannot be
    read, a link back to a folder being walked (``symlink-loop``), a folder reached a second
    time through another link, FIFOs, sockets, devices and broken links are all recorded.
    ``follow_links=False`` records a link to a folder (``folder-link``) instead of entering it;
    a folder in ``exclude`` (by :func:`file_key`: the output folder) is recorded, not read.
    """
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, tuple[tuple[int, int], ...]]] = [(folder, _parent_keys(folder))]
    while stack:
        here, ancestors = stack.pop()
        try:
            st = os.stat(here)
        except OSError as exc:
            reason = f"cannot read folder: {exc.strerror or exc}; its files are skipped"
            problems.append(Problem("unreadable-folder", str(here), reason, split=split))
            continue
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            reason = "folder link leads back to a folder above it (a loop); not followed"
            problems.append(Problem("symlink-loop", str(here), reason, split=split))
            continue
        if key in seen:
            reason = "folder already read through another link; not read twice"
            problems.append(Problem("duplicate-folder", str(here), reason, split=split))
            continue
        seen.add(key)
        entries = read_folder(here, problems, split)
        subfolders: list[Path] = []
        for e in entries or []:
            kind, reason = entry_kind(e)
            if kind == "dir" and exclude and file_key(e.path) in exclude:
                reason = "the output folder: not read"
                problems.append(Problem("output-folder", e.path, reason, split=split))
            elif kind == "dir" and not follow_links and e.is_symlink():
                reason = "link to a folder: not followed"
                problems.append(Problem("folder-link", e.path, reason, split=split))
            elif kind == "dir":
                subfolders.append(Path(e.path))
            elif kind == "file":
                found.append(e.path)
            else:
                problems.append(Problem(kind, e.path, reason, split=split))
        stack += [(d, (*ancestors, key)) for d in reversed(subfolders)]
    return found


def non_image_problem(path: str, split: str | None) -> Problem:
    """The problem recorded for a file that sits among images but is not one."""
    suffix = Path(path).suffix or "(none)"
    return Problem("not-an-image", path, f"not an image file (extension {suffix})", split=split)
