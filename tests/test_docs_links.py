"""The documentation stands alone: a clone has only the repository, so README.md and docs/*.md
must not send readers to a sibling ``../shared`` directory, and every relative Markdown link in the
repository's own Markdown files must reach a file (and, for ``file.md#anchor``, a heading) inside it.

Links are ``[text](target)`` outside fenced code blocks; targets with a scheme (``https:``,
``mailto:``) are not followed, except that README.md may link only to the repository (or to the
local demo). Anchors use GitHub's heading slugs. The worked example of docs/scenarios.md is run as
printed and must give the figures the page shows.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# README.md and docs/*.md are the newcomer's documentation; the other READMEs are checked for links.
NEWCOMER_DOCS = ("README.md", "docs/*.md")
LINKED_DOCS = NEWCOMER_DOCS + ("benchmarks/*.md", "examples/*.md", "tests/*/README.md",
                               "src/bastion/**/README.md")

LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
LOCAL_URL = re.compile(r"^https?://(127\.0\.0\.1|localhost)(:\d+)?(/|$)")


def markdown_files(root: Path, patterns: tuple[str, ...]) -> list[Path]:
    """The Markdown files matching ``patterns`` under ``root``, each once, sorted."""
    found = {path.resolve(): path for pattern in patterns for path in root.glob(pattern) if path.is_file()}
    return sorted(found.values())


def links_of(text: str) -> list[str]:
    """Targets of the inline Markdown links of ``text``, fenced code blocks left out."""
    return LINK.findall(FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8")))}


def broken_links(root: Path, path: Path) -> list[str]:
    """Each relative link of ``path`` that does not reach a file (or heading) inside ``root``."""
    problems = []
    for target in links_of(path.read_text(encoding="utf-8")):
        if SCHEME.match(target):
            if path.name == "README.md" and path.parent == root and not LOCAL_URL.match(target):
                problems.append(f"{target}: README.md links outside the repository")
            continue
        file_part, _, anchor = target.partition("#")
        linked = path if not file_part else (path.parent / file_part).resolve()
        if not linked.is_relative_to(root.resolve()):
            problems.append(f"{target}: outside the repository")
        elif not linked.exists():
            problems.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors_of(linked):
            problems.append(f"{target}: no heading #{anchor} in {linked.name}")
    return problems


def shared_mentions(path: Path) -> list[str]:
    """Lines of ``path`` that point at the sibling ``../shared`` directory, which a clone lacks."""
    return [f"line {number}: {line.strip()}"
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
            if "../shared" in line]


@pytest.mark.parametrize("path", markdown_files(ROOT, NEWCOMER_DOCS), ids=lambda p: str(p.relative_to(ROOT)))
def test_newcomer_docs_never_mention_the_shared_directory(path: Path) -> None:
    assert shared_mentions(path) == []


@pytest.mark.parametrize("path", markdown_files(ROOT, LINKED_DOCS), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(path: Path) -> None:
    assert broken_links(ROOT, path) == []


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "real.md").write_text("# Real page\n\n## 2. Units and arithmetic\n")
    readme = tmp_path / "README.md"
    readme.write_text("\n".join([
        "[ok](docs/real.md) [ok anchor](docs/real.md#2-units-and-arithmetic) [demo](http://127.0.0.1:8000)",
        "[missing](docs/nothing.md) [bad anchor](docs/real.md#3-accounts) [out](../shared/DESIGN.md)",
        "[web](https://example.org/spec)",
        "```", "[in a code block](docs/ignored.md)", "```",
        "The spec is in ../shared/DESIGN.md.",
    ]))
    assert broken_links(tmp_path, readme) == [
        "docs/nothing.md: no such file",
        "docs/real.md#3-accounts: no heading #3-accounts in real.md",
        "../shared/DESIGN.md: outside the repository",
        "https://example.org/spec: README.md links outside the repository",
    ]
    assert shared_mentions(readme) == [("line 2: [missing](docs/nothing.md) [bad anchor](docs/real.md#3-accounts) "
                                        "[out](../shared/DESIGN.md)"), "line 7: The spec is in ../shared/DESIGN.md."]


def test_worked_example_of_the_scenario_format_gives_the_numbers_the_page_shows() -> None:
    """docs/scenarios.md's example, run as printed; the figures are its hand arithmetic (steps 1-5)."""
    from bastion.scenario import run_scenario

    page = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    example = json.loads(re.search(r"```json\n(.*?)```", page, re.DOTALL).group(1))
    result = run_scenario(example)
    first = result["blocks"][0]["results"]
    assert [r["ok"] for r in first] == [True, True, False]
    assert first[1]["filled"] == "2" and first[2]["code"] == "insufficient_free_collateral"
    final = result["final"]
    figures = {s["owner"][-2:]: (s["usdc"], s["equity"], s["imr"], s["mmr"]) for s in final["subaccounts"]}
    assert figures == {"a0": ("-4003", "1597", "280", "168"), "b0": ("15999.4", "10399.4", "280", "168")}
    assert final["protocol_accounts"] == {"fees": "3.6", "funding": "0"}
    for shown in ('"usdc": "-4003", "equity": "1597", "imr": "280", "mmr": "168"',
                  '"usdc": "15999.4", "equity": "10399.4", "imr": "280", "mmr": "168"', '"fees": "3.6"'):
        assert shown in page
