"""Read the camera YAML: ``${VAR}`` from the environment, then validation, errors with line numbers.

Every problem is reported at once as ``FILE:LINE: key.path[2].name: what is expected``.
Lines come from the YAML node tree (PyYAML's compose step keeps a mark on every
node), so an unknown key points at the key and a bad value at its line. Error
messages never echo input values: a substituted password must not reach a log.
A parser may still quote a piece of a URL it refuses (a password cut short at
``#`` read as a port), so every message is masked with the secrets of every URL
in the input and in ``FER_STREAM_REDIS_URL``.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fer_stream.alerts.config import REDIS_URL_ENV
from fer_stream.config.models import FerStreamConfig
from fer_stream.redaction import mask_secrets, url_secrets
from fer_stream.resources import SHARED_ENV

Loc = tuple[str | int, ...]

#: ``${NAME}`` or ``${NAME:-default}``; ``$${`` is a literal ``${``.
ENV_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


#: A camera YAML with every alias followed has far fewer values than this; more is an alias bomb.
MAX_NODES = 100_000


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes visited with aliases followed (they share node objects), counting no further than ``limit + 1``."""
    count, stack = 0, [root]
    while stack and count <= limit:
        node = stack.pop()
        count += 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return count


class ConfigError(ValueError):
    """The YAML cannot be used; ``problems`` holds one ``FILE:LINE: path: what is expected`` per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def load_config(path: str | Path) -> FerStreamConfig:
    """Load and validate a camera YAML; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the config file ({exc.__class__.__name__}: {exc}); check the path"]) from None
    return parse_config(text, name=str(path), base_dir=path.resolve().parent)


def parse_config(text: str, *, name: str = "<config>", base_dir: Path | None = None) -> FerStreamConfig:
    """Validate YAML text; relative paths in it are taken relative to ``base_dir``."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None and _expanded_size(root, MAX_NODES) > MAX_NODES:
            raise ConfigError([
                f"{name}: the YAML expands to more than {MAX_NODES:,} values once its aliases (*name) are "
                "followed; a camera config is far smaller: write the repeated parts out or use fewer nested aliases"
            ])
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError([f"{where}: YAML syntax error: {what}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{name}: YAML error: {exc}"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError([f"{name}:1: expected a mapping with at least a `cameras:` list, found {found}"])

    lines: dict[Loc, int] = {}
    problems = [f"{name}:{line}: {_format_loc(loc)}: {what}" for loc, line, what in _index_lines(root, (), lines)]
    data, env_problems = _substitute_env(data, ())
    problems += [f"{name}:{_line_of(loc, lines)}: {_format_loc(loc)}: {what}" for loc, what in env_problems]
    if problems:
        raise ConfigError(problems)
    try:
        return FerStreamConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        secrets = [secret for url in (*_strings(data), os.environ.get(REDIS_URL_ENV, "")) for secret in url_secrets(url)]
        located = sorted(((_line_of(tuple(err["loc"]), lines), mask_secrets(_describe(err), secrets)) for err in exc.errors()),
                         key=lambda p: p[0])  # fmt: skip
        hint = _shared_hint(text, [line for line, _ in located])
        raise ConfigError([f"{name}:{line}: {what}" for line, what in located] + hint) from None


def _shared_hint(text: str, lines: list[int]) -> list[str]:
    """A bad value written with ${FER_STREAM_SHARED...} is most often the shared folder missing: say where it was looked for."""
    rows = text.splitlines()
    if not any(0 < line <= len(rows) and "${" + SHARED_ENV in rows[line - 1] for line in lines):
        return []
    value = os.environ.get(SHARED_ENV)
    now = f"it is {value!r}" if value else "it is unset, so the default in the file applies"
    return [f"(these paths are under ${SHARED_ENV}, the shared data folder; {now}: put the shared folder there, or set "
            f"{SHARED_ENV}=/path/to/shared, which holds media/ and models/)"]


def _strings(value: Any) -> Iterator[str]:
    """Every string in the parsed YAML, keys and values."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Iterator[tuple[Loc, int, str]]:
    """Fill ``lines`` (key path -> 1-based line) and yield duplicate keys, which PyYAML would silently merge."""
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                yield loc + (key,), line, f"duplicate key (first given on line {seen[key]}); keep one"
                continue
            seen[key] = line
            yield from _index_lines(value_node, loc + (key,), lines)
            lines[loc + (key,)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _index_lines(item, loc + (index,), lines)


def _substitute_env(value: Any, loc: Loc) -> tuple[Any, list[tuple[Loc, str]]]:
    if isinstance(value, dict):
        problems: list[tuple[Loc, str]] = []
        out = {}
        for key, item in value.items():
            out[key], more = _substitute_env(item, loc + (key,))
            problems += more
        return out, problems
    if isinstance(value, list):
        problems = []
        items = []
        for index, item in enumerate(value):
            new, more = _substitute_env(item, loc + (index,))
            items.append(new)
            problems += more
        return items, problems
    if not isinstance(value, str) or "$" not in value:
        return value, []
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        variable, default = match.group(1), match.group(2)
        found = os.environ.get(variable)
        if found is not None:
            return found
        if default is not None:
            return default
        missing.append(variable)
        return ""

    substituted = ENV_REFERENCE.sub(fill, value)
    return substituted, [
        (loc, f"environment variable {var} is not set; export it, or write ${{{var}:-default}} to give a default")
        for var in missing
    ]


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int:
    """Line of the deepest part of ``loc`` that exists in the file (a missing key -> its parent's line)."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(err: Mapping[str, Any]) -> str:
    """``path: expectation`` for one pydantic error, without the input value."""
    loc: Loc = tuple(part for part in err["loc"] if isinstance(part, (int, str)))
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"{_format_loc(loc)}: unknown key{hint}"
    if kind == "missing":
        return f"{_format_loc(loc)}: required key is missing"
    message = err["msg"].removeprefix("Value error, ")
    return f"{_format_loc(loc)}: {message[:1].lower()}{message[1:]}"


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys the model at ``loc`` accepts, found by walking the model's type annotations."""
    current: Any = FerStreamConfig
    for part in loc:
        current = _unwrap(current, list_item=isinstance(part, int))
        if isinstance(part, str):
            if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
                return []
            current = current.model_fields[part].annotation
    current = _unwrap(current, list_item=False)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any, *, list_item: bool) -> Any:
    """``X | None`` -> X; ``list[X]`` -> X when indexing into it."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = members[0] if len(members) == 1 else annotation
    if list_item and typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    return annotation
