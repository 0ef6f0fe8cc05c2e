"""The segments a version uses: the defaults and a shop's own TOML files, read, checked and
ordered by priority, and written back as one self-contained file (stored with each version)."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsvc.domain.segments.evaluate import evaluate
from recsvc.domain.segments.rules import SegmentDefinition, parse_rule, source_prefix
from recsvc.errors import ConfigError

DEFAULT_SEGMENTS_PATH = Path(__file__).parents[2] / "defaults" / "segments.toml"
SEGMENT_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SEGMENT_KEYS = frozenset({"expression", "priority", "description", "enabled"})
FILE_KEYS = frozenset({"segments", "include_defaults"})


@dataclass(frozen=True, slots=True)
class SegmentRules:
    """The loaded segments, highest precedence first."""

    definitions: tuple[SegmentDefinition, ...]

    def __iter__(self) -> Iterator[SegmentDefinition]:
        return iter(self.definitions)

    def __len__(self) -> int:
        return len(self.definitions)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.definitions)

    def get(self, name: str) -> SegmentDefinition:
        for definition in self.definitions:
            if definition.name == name:
                return definition
        raise KeyError(name)

    def memberships(self, record: Mapping[str, Any]) -> list[str]:
        """Names of the segments this record belongs to, primary (highest priority) first."""
        return [d.name for d in self.definitions if evaluate(d, record)]

    def primary_segment(self, record: Mapping[str, Any]) -> str | None:
        for definition in self.definitions:
            if evaluate(definition, record):
                return definition.name
        return None

    def check_columns(self, available: Iterable[str]) -> None:
        """Raise a ConfigError when a segment uses a column the data does not have."""
        have = set(available)
        for definition in self.definitions:
            missing = sorted(definition.columns - have)
            if missing:
                raise ConfigError(
                    f"{source_prefix(definition.source)}segment '{definition.name}': column(s) "
                    f"{', '.join(missing)} not in this shop's customer data"
                )


def _precedence(definition: SegmentDefinition) -> tuple[int, int, int]:
    if definition.priority is None:
        return (1, 0, definition.order)
    return (0, -definition.priority, definition.order)


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source_prefix(source)}not valid TOML: {error}") from None


def _parse_file(
    data: Mapping[str, Any], source: str, extra_columns: Sequence[str], first_order: int
) -> tuple[bool, list[SegmentDefinition], set[str]]:
    """(include_defaults, enabled definitions, names switched off) from one parsed TOML file."""
    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise ConfigError(
            f"{source_prefix(source)}unknown top-level key(s) {', '.join(unknown)}; "
            "expected [segments] and optionally include_defaults"
        )
    include_defaults = data.get("include_defaults", True)
    if not isinstance(include_defaults, bool):
        raise ConfigError(f"{source_prefix(source)}include_defaults must be true or false")
    segments = data.get("segments", {})
    if not isinstance(segments, dict):
        raise ConfigError(f"{source_prefix(source)}'segments' must be a table: [segments]")
    definitions: list[SegmentDefinition] = []
    disabled: set[str] = set()
    for index, (name, body) in enumerate(segments.items()):
        where = f"{source_prefix(source)}segment '{name}'"
        if not SEGMENT_NAME_PATTERN.match(name):
            raise ConfigError(
                f"{where}: a segment name is lower-case letters, digits and _, starting with a "
                "letter (at most 64 characters)"
            )
        if isinstance(body, str):
            body = {"expression": body}
        if not isinstance(body, dict):
            raise ConfigError(f'{where}: write name = "expression" or a [segments.{name}] table')
        unknown = sorted(set(body) - SEGMENT_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(SEGMENT_KEYS))}"
            )
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}: enabled must be true or false")
        if not enabled:
            disabled.add(name)
            continue
        expression = body.get("expression")
        if not isinstance(expression, str):
            raise ConfigError(f"{where}: needs an expression (a quoted text)")
        priority = body.get("priority")
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
            raise ConfigError(f"{where}: priority must be a whole number, got {priority!r}")
        description = body.get("description", "")
        if not isinstance(description, str):
            raise ConfigError(f"{where}: description must be a text")
        rule = parse_rule(name, expression, extra_columns, source)
        definitions.append(
            SegmentDefinition(
                name=name,
                expression=expression.strip(),
                priority=priority,
                description=description.strip(),
                rule=rule,
                source=source,
                order=first_order + index,
            )
        )
    return include_defaults, definitions, disabled


def parse_segments(
    texts: Sequence[tuple[str, str]], *, extra_columns: Sequence[str] = ()
) -> SegmentRules:
    """Build the rules from (source name, TOML text) pairs, later files overriding earlier ones.

    A later file's segment replaces an earlier one of the same name; `enabled = false` removes one.
    Two segments with the same explicit priority are an error (the primary segment would be a coin
    toss), as is any invalid expression; nothing is evaluated before all of them check out.
    """
    merged: dict[str, SegmentDefinition] = {}
    order = 0
    for source, text in texts:
        _, definitions, disabled = _parse_file(
            _read_toml(text, source), source, extra_columns, order
        )
        order += len(definitions) + len(disabled)
        for name in disabled:
            merged.pop(name, None)
        for definition in definitions:
            merged[definition.name] = definition
    by_priority: dict[int, SegmentDefinition] = {}
    for definition in merged.values():
        if definition.priority is None:
            continue
        other = by_priority.get(definition.priority)
        if other is not None:
            raise ConfigError(
                f"{source_prefix(definition.source)}segment '{definition.name}': priority "
                f"{definition.priority} is already used by segment '{other.name}'"
                f"{' in ' + other.source if other.source else ''}; priorities must be unique"
            )
        by_priority[definition.priority] = definition
    return SegmentRules(tuple(sorted(merged.values(), key=_precedence)))


def load_segments(
    paths: Sequence[Path | str] = (),
    *,
    include_defaults: bool | None = None,
    extra_columns: Sequence[str] = (),
) -> SegmentRules:
    """The shipped defaults followed by the given segments files (later ones win).

    The defaults are left out when `include_defaults` is False, or when it is None and one of the
    files says `include_defaults = false`. `extra_columns` are the customers table's additional
    attribute columns, which expressions may use as text.
    """
    texts: list[tuple[str, str]] = []
    wants_defaults = True
    for path in map(Path, paths):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"cannot read segments file {path}: {error.strerror}") from None
        data = _read_toml(text, str(path))
        if data.get("include_defaults") is False:
            wants_defaults = False
        texts.append((str(path), text))
    if include_defaults is None:
        include_defaults = wants_defaults
    if include_defaults:
        texts.insert(0, (DEFAULT_SEGMENTS_PATH.name, DEFAULT_SEGMENTS_PATH.read_text("utf-8")))
    return parse_segments(texts, extra_columns=extra_columns)


def rules_to_toml(rules: SegmentRules) -> str:
    """The rules as one self-contained segments file (defaults switched off, precedence kept), so a
    model version carries exactly the rules it was built with."""

    lines = ["include_defaults = false", ""]
    for definition in rules.definitions:
        lines.append(f"[segments.{definition.name}]")
        lines.append(f"expression = {json.dumps(definition.expression)}")
        lines.append(f"description = {json.dumps(definition.description)}")
        if definition.priority is not None:
            lines.append(f"priority = {definition.priority}")
        lines.append("")
    return "\n".join(lines)
