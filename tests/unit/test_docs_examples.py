"""The examples in README.md and docs/*.md are tested, so the docs cannot drift from the code.

- Every fenced ```yaml block is a whole configuration document that ``parse_document``
  accepts; a block preceded by the line ``<!-- invalid -->`` is a deliberately invalid example
  and must raise ``InvalidConfiguration``.
- Every ``bascule ...`` command in a fenced ```sh block names commands and options that exist
  in the real CLI (``bascule.main.app``, read as a click command tree with
  ``typer.main.get_command``); so does every inline ```bascule ...``` code span, where
  upper-case words are placeholders.

Typer ships its own copy of click (``typer._click``), so the tree is read by duck typing:
a group has ``get_command``, an option has ``param_type_name == "option"``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from bascule.errors import InvalidConfiguration
from bascule.main import app
from bascule.model import parse_document

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
INVALID_MARKER = "<!-- invalid -->"

_OPENING = re.compile(r"^\s*```(?P<lang>[\w-]*)\s*$")
_CLOSING = re.compile(r"^\s*```\s*$")
_INLINE = re.compile(r"`(bascule [^`]+)`")
_SHELL_SEPARATORS = frozenset({"|", "||", "&&", ";", "&"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# NAME, ADDRESS:PORT, N, REV...: words the docs use for "put your value here".
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_:.-]*$")

CLI = typer.main.get_command(app)


@dataclass(frozen=True, kw_only=True)
class Block:
    """One fenced code block of a Markdown file."""

    source: str  # "docs/reference.md:42", the line of the opening fence
    lang: str
    text: str
    invalid: bool


def fenced_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _OPENING.match(lines[index])
        if opening is None:
            index += 1
            continue
        start = index
        previous = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
        body: list[str] = []
        index += 1
        while index < len(lines) and not _CLOSING.match(lines[index]):
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise AssertionError(f"{path.name}:{start + 1}: code block never closed")
        blocks.append(
            Block(
                source=f"{path.relative_to(ROOT)}:{start + 1}",
                lang=opening["lang"],
                text="\n".join(body) + "\n",
                invalid=previous == INVALID_MARKER,
            )
        )
        index += 1
    return blocks


ALL_BLOCKS = [block for path in DOCUMENTS for block in fenced_blocks(path)]
YAML_BLOCKS = [block for block in ALL_BLOCKS if block.lang == "yaml"]
SH_BLOCKS = [block for block in ALL_BLOCKS if block.lang == "sh"]


def test_the_docs_have_examples_to_test() -> None:
    assert all(path.exists() for path in DOCUMENTS)
    assert {path.name for path in DOCUMENTS} >= {
        "README.md",
        "user-guide.md",
        "reference.md",
        "architecture.md",
    }
    assert YAML_BLOCKS
    assert SH_BLOCKS
    assert any(block.invalid for block in YAML_BLOCKS)


def test_the_invalid_marker_only_precedes_yaml_blocks() -> None:
    misplaced = [b.source for b in ALL_BLOCKS if b.invalid and b.lang != "yaml"]
    assert not misplaced


# -- configuration documents ---------------------------------------------------------------


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda block: block.source)
def test_yaml_example(block: Block) -> None:
    data = yaml.safe_load(block.text)
    if block.invalid:
        with pytest.raises(InvalidConfiguration):
            parse_document(data)
    else:
        parse_document(data)


# -- commands ------------------------------------------------------------------------------


def shell_invocations(text: str) -> Iterator[list[str]]:
    """The arguments of every ``bascule`` invocation in a shell snippet."""
    for line in text.splitlines():
        tokens = shlex.split(line, comments=True)
        segment: list[str] = []
        for token in [*tokens, ";"]:
            if token not in _SHELL_SEPARATORS:
                segment.append(token)
                continue
            words = list(segment)
            while words and (words[0] == "sudo" or _ASSIGNMENT.match(words[0])):
                words = words[1:]  # VAR=value and sudo before the command
            if words and Path(words[0]).name == "bascule":
                yield words[1:]
            segment = []


def _option(command: Any, token: str) -> Any:
    """The option of ``command`` that ``token`` (``--name`` or ``--name=value``) names."""
    name = token.split("=", 1)[0]
    for param in command.params:
        if param.param_type_name == "option" and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def _is_group(command: Any) -> bool:
    return hasattr(command, "get_command")


def _max_arguments(command: Any) -> int | None:
    """How many positional arguments ``command`` takes (None: no limit)."""
    counts = [p.nargs for p in command.params if p.param_type_name == "argument"]
    return None if any(n < 0 for n in counts) else sum(counts)


def cli_problems(args: list[str], *, placeholders: bool) -> list[str]:
    """What in ``bascule <args>`` does not exist in the CLI (empty when it all does)."""
    command: Any = CLI
    where = "bascule"
    positional = 0
    index = 0
    while index < len(args):
        token = args[index]
        if placeholders:
            token = token.strip("[]").rstrip("\\")
        if token == "--help":
            return []
        if token.startswith("-") and token != "-":
            option = _option(command, token)
            if option is None:
                return [f"{where} has no option {token.split('=', 1)[0]}"]
            index += 1
            takes_value = not option.is_flag and not option.count
            if takes_value and "=" not in token:
                index += 1
            continue
        if _is_group(command):
            with typer.Context(command) as ctx:
                sub = command.get_command(ctx, token)
            if sub is None:
                if placeholders and (_PLACEHOLDER.match(token) or token in {"...", "|"}):
                    return []
                return [f"{where} has no command {token!r}"]
            command, where = sub, f"{where} {token}"
        elif not (placeholders and token == "..."):
            positional += 1
            limit = _max_arguments(command)
            if limit is not None and positional > limit:
                return [f"{where} takes at most {limit} argument(s), not {token!r}"]
        index += 1
    if _is_group(command) and not command.invoke_without_command:
        return [f"{where} needs a command"]
    return []


SH_INVOCATIONS = [
    pytest.param(args, id=f"{block.source}: bascule {' '.join(args)}")
    for block in SH_BLOCKS
    for args in shell_invocations(block.text)
]
INLINE_INVOCATIONS = sorted(
    {
        tuple(span.split()[1:])
        for path in DOCUMENTS
        for span in _INLINE.findall(path.read_text(encoding="utf-8"))
    }
)


def test_sh_blocks_run_bascule() -> None:
    assert SH_INVOCATIONS


@pytest.mark.parametrize("args", SH_INVOCATIONS)
def test_sh_example_commands_exist(args: list[str]) -> None:
    assert cli_problems(args, placeholders=False) == []


@pytest.mark.parametrize("args", INLINE_INVOCATIONS, ids=" ".join)
def test_inline_commands_exist(args: tuple[str, ...]) -> None:
    assert cli_problems(list(args), placeholders=True) == []


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["vs", "ad", "web"], "bascule vs has no command 'ad'"),
        (["rs", "drain", "--now", "web"], "bascule rs drain has no option --now"),
        (["vs"], "bascule vs needs a command"),
        (["run", "now"], "bascule run takes at most 0 argument(s), not 'now'"),
        (["--data-dir", "/tmp/x", "frobnicate"], "bascule has no command 'frobnicate'"),
    ],
)
def test_the_command_check_catches_mistakes(args: list[str], problem: str) -> None:
    assert cli_problems(args, placeholders=False) == [problem]


def test_the_command_check_accepts_what_exists() -> None:
    for args in (
        ["--data-dir", "/tmp/x", "--json", "status", "web"],
        ["apply", "-f", "-", "--dry-run", "-m", "why"],
        ["history"],
        ["history", "-n", "5", "show", "3", "--document"],
        ["export", "--format=json", "-o", "x.json"],
        ["demo", "--stop"],
    ):
        assert cli_problems(args, placeholders=False) == [], args
