"""The documentation stays true to the repository: links resolve, the README fits on a screen and opens with the
two commands, and every command, option and OSC parameter the code offers is documented where a user looks.

These read the real files and the real CLI parser (``livesound.cli.build_parser``) and OSC table
(``livesound.rig.control.PARAMS``), so adding a command, a flag or a parameter without documenting it fails here.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from livesound.cli import build_parser
from livesound.rig.control import PARAMS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README] + sorted(DOCS.glob("*.md"))
README_MAX_LINES = 200

# Where each command's options must be documented (README's table names the command; these pages explain it).
OPTION_PAGES = {
    "live": ["live.md", "rig.md"], "generate": ["offline.md"], "optimize": ["offline.md"],
    "interpolate": ["offline.md"], "project": ["offline.md"], "embed": ["audio.md"], "convert": ["checkpoints.md"],
    "presets": ["checkpoints.md"], "export": ["export.md"], "bench": ["performance.md"], "directions": ["meaning.md"],
    "train-encoder": ["training.md"], "train-mapper": ["training.md"], "eval": ["training.md"],
    "bank": ["meaning.md"],
}

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _prose(text: str) -> str:
    """The text without fenced code blocks (a code sample may hold brackets that are no link)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", _prose(path.read_text()), re.M)}


def _section(text: str, title: str) -> str:
    """The body of the ``## title`` section (up to the next heading of level 1 or 2)."""
    m = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^#{{1,2}} |\Z)", text, re.S | re.M)
    assert m, f"no '## {title}' section"
    return m.group(1)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}


def test_the_docs_exist():
    names = {p.name for p in DOCS.glob("*.md")}
    assert {"design.md", "live.md", "rig.md", "audio.md", "offline.md", "training.md", "export.md",
            "checkpoints.md", "performance.md", "troubleshooting.md"} <= names, sorted(names)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_an_existing_file_and_heading(page):
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...: not this repository's
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading '#{anchor}' in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_the_link_checker_sees_a_broken_link(tmp_path):
    """Not vacuous: a planted link to a missing page and one to a missing heading are both reported."""
    page = tmp_path / "p.md"
    page.write_text("# Top\n[a](missing.md) [b](#nowhere) [c](#top) `[d](in-code.md)`\n```\n[e](f.md)\n```\n")
    found = LINK.findall(_prose(page.read_text()))
    assert found == ["missing.md", "#nowhere", "#top", "in-code.md"]
    assert _anchors(page) == {"top"}
    assert _slug("`livesound optimize`: sound-guided latent optimisation") == \
        "livesound-optimize-sound-guided-latent-optimisation"
    assert _slug("The paper's training step") == "the-papers-training-step"


def test_readme_fits_on_a_screen_and_opens_with_the_two_commands():
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    first = FENCE.search(text)
    assert first, "README.md has no code block"
    assert "\n## " not in text[:first.start()], "the two commands must come before the first section"
    commands = [line.split("#")[0].strip() for line in first.group(0).splitlines()[1:-1]]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"], commands


def test_readme_holds_no_benchmark_figures():
    """Figures live in the generated benchmarks/README.md only, so they cannot go stale here."""
    figures = [line for line in README.read_text().splitlines()
               if re.search(r"\b\d+(\.\d+)?\s?(ms|fps|GFLOP/s)\b", line)]
    assert not figures, figures


def test_every_docs_page_is_listed_in_the_readme():
    listed = set(LINK.findall(_section(README.read_text(), "Documentation")))
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if f"docs/{p.name}" not in listed]
    assert not missing, f"not in README's Documentation list: {missing}"


def test_every_command_is_in_the_readme_command_table():
    rows = [line for line in _section(README.read_text(), "Commands").splitlines() if line.startswith("|")]
    assert rows, "README's Commands section has no table"
    missing = []
    parser = build_parser()
    for name, sub in _subcommands(parser).items():
        own = [r for r in rows if re.search(rf"`livesound {re.escape(name)}\b", r)]
        if not own:
            missing.append(name)
        for nested in _subcommands(sub):  # eval's evaluations: named in the command's own rows
            if not any(re.search(rf"`(livesound {re.escape(name)} )?{re.escape(nested)}`", r) for r in own):
                missing.append(f"{name} {nested}")
    if not any("--list-devices" in r for r in rows):
        missing.append("--list-devices")
    assert not missing, f"commands missing from README's table: {missing}"


@pytest.mark.parametrize("command", sorted(OPTION_PAGES))
def test_every_option_of_a_command_is_documented(command):
    sub = _subcommands(build_parser())[command]
    parsers = [sub] + list(_subcommands(sub).values())
    text = "\n".join((DOCS / page).read_text() for page in OPTION_PAGES[command])
    missing = sorted({opt for p in parsers for opt in _long_options(p)
                      if not re.search(rf"`[^`]*{re.escape(opt)}(?![\w-])", text)})
    assert not missing, f"`livesound {command}` options not in {OPTION_PAGES[command]}: {missing}"


def test_every_command_has_a_page_for_its_options():
    assert set(_subcommands(build_parser())) == set(OPTION_PAGES)


def test_every_osc_parameter_is_in_the_rig_reference():
    osc_in = _section((DOCS / "rig.md").read_text(), "OSC in")
    missing = [name for name in PARAMS if f"`/livesound/{name}`" not in osc_in]
    assert not missing, f"OSC parameters missing from docs/rig.md's 'OSC in' table: {missing}"
