"""Reading a config file safely: bounded size, UTF-8, YAML with bounded depth and aliases.

yaml.safe_load builds whatever the file describes: an alias bomb of a few hundred bytes
expands to a billion values when walked, and a deeply nested list overflows the stack.
Every refusal is one line naming the file and, where there is one, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 50
MAX_VALUES = 100_000  # after expanding aliases


class ConfigFileError(Exception):
    """The file cannot be read as a config: one line, naming the file."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader refusing nesting deeper than MAX_DEPTH while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                # types-PyYAML leaves Parser.peek_event unannotated
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_yaml(path: str | Path) -> Any:
    """The file's YAML document (None when empty). Raises ConfigFileError."""
    text = _read_text(path)
    try:
        return _load(text, path)
    except yaml.YAMLError as e:
        raise ConfigFileError(f"{path}: not valid YAML{_where(e, text)}") from None


def _load(text: str, path: str | Path) -> Any:
    loader = _BoundedLoader(text)  # checks every character first
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_VALUES:
            raise ConfigFileError(
                f"{path}: aliases expand to more than {MAX_VALUES} values; refused"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _read_text(path: str | Path) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigFileError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigFileError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB; not a config")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigFileError(
            f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at line {line})"
        ) from None


def _expanded_size(root: Node) -> int:
    """Values the document holds once every alias is expanded, counted up to MAX_VALUES + 1.

    Iterative, and stops counting past the bound: a recursive alias never ends.
    """
    count, stack = 0, [root]
    while stack and count <= MAX_VALUES:
        node = stack.pop()
        count += 1
        if isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                stack += (key, value)
    return count


def _where(error: yaml.YAMLError, text: str) -> str:
    """' at line L, column C: reason' from the parser's own mark and words."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        return f" at line {line}: unacceptable character #x{error.character:04x}"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{where}: {problem}" if problem else where
