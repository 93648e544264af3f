"""Bounded parsing of untrusted input: one rule each for JSON, YAML and files read whole.

- JSON (`loads`): nesting at most `MAX_JSON_DEPTH` levels (checked before decoding, so 100k-deep nesting is
  refused instead of exhausting the recursion limit) and number literals of at most `MAX_NUMBER_CHARS`
  characters.
- YAML (`load_yaml`): the safe loader, with nesting at most `MAX_YAML_DEPTH` levels, no alias to an
  enclosing node (a recursive structure), and aliases adding at most `MAX_ALIAS_EXPANSION_NODES` nodes
  when expanded. Nodes are counted while the document is composed, before anything is built, so a "billion
  laughs" alias bomb nested anywhere is refused at load instead of when something later walks it.
- Files (`check_regular_file`, `read_bytes_bounded`): only regular files (a FIFO or a device would block
  or never end), stat-ed before opening, and read whole only under a size limit. These messages say
  what is wrong ("is a named pipe (FIFO), not a regular file"); the caller names the file.

A leaf module (no tunesmith imports, the bottom import layer) so data/, recipe/, rewards/ and the HTTP
plumbing share it. Every refusal is a `LimitError` (a `ValueError`): what (one line)
and a `fix`; the caller says where (file, line, HTTP status) and raises its own error type.
"""

from __future__ import annotations

import json
import os
import re
import stat
from typing import Any

import yaml

MAX_JSON_DEPTH = 128
"""Deepest JSON nesting accepted (ours: chat rows nest ~6 levels, tool-call arguments a few more; 128 is
also serde_json's default recursion limit)."""
MAX_NUMBER_CHARS = 4300
"""Longest number literal accepted: Python's own default limit on int <-> str conversion digits."""
MAX_YAML_DEPTH = 64
"""Deepest YAML nesting accepted (ours; a recipe nests ~6 levels). Refusing `[` x 10^6 takes under 1 s."""
MAX_ALIAS_EXPANSION_NODES = 100_000
"""Nodes that YAML aliases may add when expanded (ours: a recipe's anchors add tens; a bomb adds 10^9)."""
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
"""Largest file read whole (recipes, schema files; ours: a recipe is a few KiB)."""


class LimitError(ValueError):
    """Input refused (past a limit, or a file that cannot be read): `str()` says what (one line), `fix` how
    to fix it, `line` the 1-based line where known (YAML)."""

    def __init__(self, message: str, fix: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.fix = fix
        self.line = line


# --- JSON -----------------------------------------------------------------------------------------------


_SHORTER_NUMBER = "write the number with fewer digits, or as a string"


def parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise LimitError(
            f"a number with {len(literal)} digits (the limit is {MAX_NUMBER_CHARS})", _SHORTER_NUMBER
        )
    return int(literal)


def parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise LimitError(
            f"a number of {len(literal)} characters (the limit is {MAX_NUMBER_CHARS})", _SHORTER_NUMBER
        )
    return float(literal)


_DECODER = json.JSONDecoder(parse_int=parse_int, parse_float=parse_float)
_BRACKET_OR_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def check_json_depth(text: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """`LimitError` when `text` nests arrays/objects deeper than `max_depth` (brackets in strings ignored).
    Free for ordinary rows: a text with at most `max_depth` opening brackets is not scanned."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for match in _BRACKET_OR_STRING.finditer(text):
        char = match.group()[0]
        if char in "[{":
            depth += 1
            if depth > max_depth:
                raise LimitError(
                    f"JSON nested too deeply (more than {max_depth} levels)", "flatten the structure"
                )
        elif char in "]}":
            depth -= 1


def loads(text: str | bytes) -> Any:
    """`json.loads` with the depth and number-size limits: `LimitError` past them, `json.JSONDecodeError`
    (also a ValueError) for invalid JSON. Fast on the common line: one `raw_decode` and a check that only
    whitespace follows."""
    if type(text) is not str:
        if not isinstance(text, bytes | bytearray):
            raise TypeError(f"JSON must be str or bytes, not {type(text).__name__}")
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:  # else it cannot nest that deep
        check_json_depth(text)
    try:
        value, end = _DECODER.raw_decode(text)
    except json.JSONDecodeError:
        return _DECODER.decode(text)  # leading whitespace, or invalid: the exact error with its position
    if end != len(text) and not text[end:].isspace():
        return _DECODER.decode(text)  # raises "Extra data" with the position
    return value


# --- YAML -----------------------------------------------------------------------------------------------


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class _BoundedComposer:
    """A mixin for a PyYAML loader: counts nesting and the expanded size of every node while composing."""

    def _bounded_init(self) -> None:
        self._depth = 0
        self._unique = 0  # nodes written in the document
        self._sizes: dict[int, int] = {}  # id(node) -> its node count with aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[attr-defined]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)  # type: ignore[misc]
            if id(node) not in self._sizes:
                raise LimitError(
                    f"alias *{event.anchor} refers to a node that contains it (a recursive structure)",
                    "remove the alias or point it elsewhere",
                    line=line,
                )
            return node
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise LimitError(
                f"YAML nested deeper than {MAX_YAML_DEPTH} levels", "flatten the structure", line=line
            )
        try:
            node = super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1
        self._unique += 1
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag in _NUMBER_TAGS
            and len(node.value) > MAX_NUMBER_CHARS
        ):
            raise LimitError(
                f"a number of {len(node.value)} characters (the limit is {MAX_NUMBER_CHARS})",
                _SHORTER_NUMBER,
                line=line,
            )
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        size = 1 + sum(self._sizes[id(child)] for child in children)
        self._sizes[id(node)] = size
        if size - self._unique > MAX_ALIAS_EXPANSION_NODES:
            raise LimitError(
                f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION_NODES} extra nodes (an alias bomb?)",
                "write the values out instead of nesting aliases",
                line=line,
            )
        return node


_LOADERS: dict[type, type] = {}


def load_yaml(text: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """One YAML document, built by `loader` (a `yaml.SafeLoader` or a subclass) within the limits above.
    Raises `LimitError` past a limit and `yaml.YAMLError` for invalid YAML."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise LimitError(
            f"a YAML document of {len(text)} characters (the limit is {MAX_DOCUMENT_BYTES})", "split the file"
        )
    bounded = _LOADERS.get(loader)
    if bounded is None:
        bounded = _LOADERS[loader] = type(f"Bounded{loader.__name__}", (_BoundedComposer, loader), {})
    instance = bounded(text)
    try:
        instance._bounded_init()
        return instance.get_single_data()
    finally:
        instance.dispose()


# --- files ----------------------------------------------------------------------------------------------

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_regular_file(path: str | os.PathLike[str]) -> os.stat_result:
    """The file's stat when `path` is a regular file (symlinks followed); `LimitError` for a folder, FIFO,
    device or socket, which would block or never end when read. `FileNotFoundError` etc. pass through."""
    status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _KINDS if test(status.st_mode)), "not a regular file")
        raise LimitError(f"is {kind}, not a regular file", "give the path of a regular file")
    return status


def read_bytes_bounded(path: str | os.PathLike[str], max_bytes: int | None = None) -> bytes:
    """The whole content of the regular file `path`, at most `max_bytes` (default `MAX_DOCUMENT_BYTES`;
    `LimitError` past it, also for a file that grows while read). `OSError`s pass through."""
    max_bytes = MAX_DOCUMENT_BYTES if max_bytes is None else max_bytes
    status = check_regular_file(path)
    too_big = f"is larger than {max_bytes} bytes, the limit for a file read whole"
    if status.st_size > max_bytes:
        raise LimitError(too_big, "check that this is the right file")
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise LimitError(too_big, "check that this is the right file")
    return data


def read_text_bounded(path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
    """`read_bytes_bounded`, decoded; every reason the file cannot be read as text is a `LimitError`
    (missing, unreadable, not a regular file, too large, not `encoding`)."""
    try:
        return read_bytes_bounded(path).decode(encoding)
    except FileNotFoundError:
        raise LimitError("not found", "check the path") from None
    except UnicodeDecodeError as err:
        raise LimitError(f"is not {encoding} text (byte {err.start})", f"save it as {encoding}") from None
    except OSError as err:
        raise LimitError(f"cannot be read ({err.strerror or err})", "check its permissions") from None
