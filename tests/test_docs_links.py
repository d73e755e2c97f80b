"""Every document the README, docs/ and the code point at exists (issue 21).

docs/faces.md and docs/predict.md were folded into the README and docs/BENCHMARKS.md while
links to them stayed behind; these checks catch the next such move. Markdown links are checked
down to the heading anchor, bare ``docs/NAME.md`` mentions (in prose, docstrings, comments) to
the file.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_DOC_MENTION = re.compile(r"\bdocs/[\w.-]+\.md\b")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeats get GitHub's -1, -2 suffixes)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    """``"FILE: TARGET (why)"`` for each relative link of ``path`` that leads nowhere."""
    broken = []
    for target in _LINK.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{path.name}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{path.name}: {target} (no such heading)")
    return broken


def test_every_relative_link_in_readme_and_docs_resolves() -> None:
    broken = [b for path in _markdown_files() for b in broken_links(path)]
    assert broken == []


def test_every_mentioned_doc_exists() -> None:
    sources = [
        *_markdown_files(),
        *sorted((ROOT / "src").rglob("*.py")),
        ROOT / "pyproject.toml",
        ROOT / "Makefile",
        ROOT / "Dockerfile",
    ]
    missing = [
        f"{source.relative_to(ROOT)}: {doc}"
        for source in sources
        if source.exists()
        for doc in _DOC_MENTION.findall(source.read_text(encoding="utf-8"))
        if not (ROOT / doc).exists()
    ]
    assert missing == []


def test_the_checker_sees_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Faces in photos — `ferkit.faces`\n\n## Load\n\n## Load\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Top\n[ok](other.md#faces-in-photos--ferkitfaces) [ok](other.md#load-1) [ok](#top)\n"
        "[web](https://example.org/x.md) [gone](gone.md) [bad](other.md#nope) [bad](#nope)\n"
        "```\n[in code](ignored.md)\n```\n"
    )
    assert broken_links(doc) == [
        "doc.md: gone.md (no such file)",
        "doc.md: other.md#nope (no such heading)",
        "doc.md: #nope (no such heading)",
    ]
