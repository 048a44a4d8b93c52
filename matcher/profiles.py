"""Celebrity profiles: the roster a campaign planner writes, one YAML file per celebrity.

The folder is the configuration. Loading is all-or-nothing and reports every
problem in every file at once (``file:line: field: problem``), because a
planner fixing a roster wants the whole list, not one error per run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .capacity import InfeasibleLimits, check_limits, limits_of
from .errors import ConfigError, Problem, ProfileError
from .feedback import Correction, load_corrections

PROFILE_SUFFIXES = (".yaml", ".yml")
#: libyaml's safe loader when PyYAML was built with it: the roster page parses
#: every profile on each view, about ten times faster than the pure-Python one.
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
#: The facets the sample roster uses; planners may add others.
USUAL_FACETS = ("style", "values", "lifestyle", "scent", "audience")


FacetName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
FacetText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
ExampleText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)
]


class Profile(BaseModel):
    """One celebrity's brand profile.

    ``facets`` maps a facet name (style, values, scent...) to free text in
    English or Chinese; each facet is embedded on its own so a match can say
    which facet of the celebrity the shopper is closest to. ``facets_zh`` gives
    the same facets in Chinese: both languages shape the match, and reasons are
    quoted in the shopper's language. ``examples`` are texts a fitting shopper
    might write, in either language; matching compares shoppers with them too.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str = Field(pattern=ID_PATTERN, max_length=64)
    name: str = Field(min_length=1, max_length=120)
    name_zh: str = Field(min_length=1, max_length=60)
    tagline: str = Field(min_length=1, max_length=300)
    tagline_zh: str | None = Field(default=None, min_length=1, max_length=300)
    facets: dict[FacetName, FacetText] = Field(min_length=1)
    facets_zh: dict[FacetName, FacetText] = Field(default_factory=dict)
    examples: list[ExampleText] = Field(default_factory=list, max_length=200)
    tags: list[Tag]
    image: str | None = None
    active: bool = True
    quota: int | None = Field(default=None, ge=0)
    #: The share of the campaign's pairings this celebrity was promised, at least / at most.
    min_share: float | None = Field(default=None, ge=0, le=1)
    max_share: float | None = Field(default=None, ge=0, le=1)

    @field_validator("name", "name_zh", "tagline", "tagline_zh")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is blank")
        return value.strip() if value is not None else None

    @field_validator("facets_zh")
    @classmethod
    def _chinese_facets_translate_known_facets(
        cls, facets_zh: dict[str, str], info: ValidationInfo
    ) -> dict[str, str]:
        unknown = sorted(set(facets_zh) - set(info.data.get("facets") or {}))
        if unknown:
            raise ValueError(f"names facets that 'facets' does not have: {', '.join(unknown)}")
        return facets_zh

    def content_hash(self) -> str:
        """A digest of everything that is embedded, so unchanged profiles are not re-embedded."""
        payload = json.dumps(
            {"facets": self.facets, "facets_zh": self.facets_zh, "examples": self.examples},
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Roster:
    """The loaded profiles of one campaign, in file-name order, and planners' corrections."""

    folder: Path
    profiles: tuple[Profile, ...]
    corrections: tuple[Correction, ...] = ()

    def corrected_examples(self) -> dict[str, tuple[str, ...]]:
        """Corrected texts per celebrity id, used as extra examples of that celebrity."""
        by_id: dict[str, list[str]] = {}
        for correction in self.corrections:
            by_id.setdefault(correction.right, []).append(correction.text)
        return {key: tuple(texts) for key, texts in by_id.items()}

    @property
    def active(self) -> tuple[Profile, ...]:
        """Profiles that take part in matching."""
        return tuple(p for p in self.profiles if p.active)

    def get(self, celebrity_id: str) -> Profile:
        """Return the profile with this id.

        Raises:
            KeyError: no profile has this id.
        """
        for profile in self.profiles:
            if profile.id == celebrity_id:
                return profile
        raise KeyError(celebrity_id)

    def __iter__(self) -> Iterator[Profile]:
        return iter(self.profiles)

    def __len__(self) -> int:
        return len(self.profiles)


def confined_folder(root: str | Path, folder: str | Path) -> Path:
    """``folder`` as a real path inside ``root``, the only place campaign rosters may live.

    A relative ``folder`` is taken inside ``root``. Symbolic links are followed
    before the check, so a link cannot lead out; the folder need not exist yet.

    Raises:
        ConfigError: the folder resolves to ``root`` itself or anywhere outside it.
    """
    base = Path(root).resolve()
    try:
        candidate = Path(folder)
        resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
    except (OSError, ValueError):  # a NUL in the name, a loop of links, a name too long
        raise ConfigError(f"a roster folder must be a folder inside {base}") from None
    if base not in resolved.parents:
        raise ConfigError(f"a roster folder must be a folder inside {base}")
    return resolved


def load_profiles(folder: str | Path, *, within: str | Path | None = None) -> Roster:
    """Load and validate every profile file in ``folder``.

    Args:
        folder: a directory holding ``*.yaml`` / ``*.yml`` files, one per celebrity.
        within: when given, a file that is a link to somewhere outside this
            folder is reported as a problem and not read.

    Returns:
        The roster, with profiles in file-name order.

    Raises:
        ProfileError: with every problem found across all files; nothing is half-loaded.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ProfileError([Problem(str(folder), "", "profiles folder not found")])
    files = sorted(p for p in folder.iterdir() if p.suffix in PROFILE_SUFFIXES and p.is_file())
    if not files:
        raise ProfileError([Problem(str(folder), "", "no profile files (*.yaml) in this folder")])

    problems: list[Problem] = []
    profiles: list[Profile] = []
    seen: dict[str, str] = {}
    outside = _links_outside(files, within)
    for path in files:
        if path in outside:
            problems.append(
                Problem(path.name, "", "is a link to a file outside the rosters folder")
            )
            continue
        profile, file_problems = parse_profile(path.name, path.read_bytes())
        problems.extend(file_problems)
        if profile is None:
            continue
        if profile.id in seen:
            message = f"the same id as {seen[profile.id]}"
            problems.append(Problem(path.name, "id", message, _top_level_line(path, "id")))
            continue
        seen[profile.id] = path.name
        profiles.append(profile)
    corrections, correction_problems = load_corrections(folder, seen)
    problems.extend(correction_problems)
    if problems:
        raise ProfileError(problems)
    if not any(p.active for p in profiles):
        raise ProfileError([Problem(str(folder), "active", "no profile is active")])
    active = [p for p in profiles if p.active]
    limits = limits_of(active)
    try:
        check_limits(limits, complete=len(limits) == len(active))
    except InfeasibleLimits as exc:
        raise ProfileError(
            [Problem(str(folder), "quota, min_share, max_share", str(exc))]
        ) from None
    return Roster(folder=folder, profiles=tuple(profiles), corrections=corrections)


def _links_outside(files: list[Path], within: str | Path | None) -> set[Path]:
    if within is None:
        return set()
    root = Path(within).resolve()
    return {path for path in files if root not in path.resolve().parents}


def parse_profile(file_name: str, raw: bytes) -> tuple[Profile | None, list[Problem]]:
    """Parse one profile file's bytes.

    Returns:
        The profile (or None when the file has problems) and the list of problems.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        return None, [
            Problem(
                file_name,
                "",
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
                bad_line,
            )
        ]
    try:
        node = yaml.compose(text, Loader=SAFE_LOADER)
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = _unquoted(getattr(exc, "problem", None) or "cannot be parsed")
        return None, [Problem(file_name, "", f"not valid YAML: {problem}", line)]
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        return None, [Problem(file_name, "", "must be a mapping of fields (id: ..., name: ...)")]

    lines, duplicates = _key_lines(node)
    problems = [
        Problem(file_name, _shown_field(field), "appears twice in this file", line)
        for field, line in duplicates
    ]
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems_from(file_name, exc, lines))
        return None, problems
    return (None if problems else profile), problems


def _top_level_line(path: Path, key: str) -> int | None:
    """Line of a top-level key in a file already known to parse."""
    node = yaml.compose(path.read_text(encoding="utf-8-sig"), Loader=SAFE_LOADER)
    return _key_lines(node)[0].get(key) if isinstance(node, yaml.MappingNode) else None


def _key_lines(node: yaml.MappingNode) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Map dotted field paths to their line numbers, and find keys given twice."""
    lines: dict[str, int] = {}
    duplicates: list[tuple[str, int]] = []

    def walk(mapping: yaml.MappingNode, prefix: str) -> None:
        for key_node, value_node in mapping.value:
            path = f"{prefix}{key_node.value}"
            line = key_node.start_mark.line + 1
            if path in lines:
                duplicates.append((path, line))
            lines.setdefault(path, line)
            if isinstance(value_node, yaml.MappingNode):
                walk(value_node, path + ".")

    walk(node, "")
    return lines, duplicates


_FRIENDLY = {
    "missing": "is required but missing",
    "extra_forbidden": "is not a known field",
}


def _problems_from(
    file_name: str, exc: ValidationError, lines: dict[str, int]
) -> Iterable[Problem]:
    allowed = ", ".join(Profile.model_fields)
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = _FRIENDLY.get(error["type"], error["msg"])
        if error["type"] == "extra_forbidden":
            message += f" (allowed: {allowed})"
        elif error["type"] == "string_pattern_mismatch" and field == "id":
            message = "must be kebab-case: lowercase letters and digits joined by '-'"
        elif error["type"] == "string_pattern_mismatch" and field.endswith("[key]"):
            field = field.removesuffix(".[key]")
            message = "facet names must be lowercase letters, digits and underscores"
        elif error["type"] == "string_too_short":
            message = "is empty"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        elif "input" in error and error["type"].endswith("_type"):
            # The type, never the value: a message must not repeat what the file holds.
            message += f", got {_type_name(error['input'])}"
        line = _line_for(field, lines)
        yield Problem(file_name, _shown_field(field), message, line)


def _line_for(field: str, lines: dict[str, int]) -> int | None:
    while field:
        if field in lines:
            return lines[field]
        field = field.rpartition(".")[0]
    return None


#: A field name as a planner writes one; any other key is not repeated in a message.
_FIELD_PART = re.compile(r"^[^\x00-\x1f\x7f-\x9f]{1,40}$")


def _shown_field(field: str) -> str:
    """``field`` as a message may show it: keys too long to be a field name become ``?``.

    Problems are shown to planners on the web and in logs; a key of a file
    that is not a profile at all could be anything, so a long or multi-line
    one is not repeated (values never are).
    """
    return ".".join(part if _FIELD_PART.match(part) else "?" for part in field.split("."))


def _type_name(value: Any) -> str:
    names = {str: "text", bool: "true/false", int: "a number", float: "a number"}
    names.update({list: "a list", dict: "a mapping", type(None): "nothing"})
    return names.get(type(value), "another kind of value")


def _unquoted(problem: str) -> str:
    """A YAML parser's complaint without the characters it quotes from the file."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", "…", problem)
