"""A casting brief: the product's desired image as weighted facets, and what the set must be.

A planner writes one YAML (or JSON) file per product::

    product: Lueur
    k: 7
    facets:
      heritage:
        en: Shanghai in the 1930s, qipao, jasmine ...
        zh: 三十年代的上海，旗袍，茉莉……
        weight: 1.0            # optional, default 1
    must_include: [lin-yue]    # optional candidate ids
    must_exclude: []           # optional candidate ids
    max_per_category: 2        # optional: at most N faces of one category
    categories: [actor, singer]  # optional: which tags are categories

A candidate's category is the first of its tags that ``categories`` lists,
or its first tag when the brief lists none. Loading reports every problem at
once as ``file:line: field: problem``, the way a roster does
(:mod:`matcher.profiles`), whose line finder this module shares.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from ..errors import MatcherError, Problem
from ..profiles import (
    ID_PATTERN,
    SAFE_LOADER,
    FacetName,
    _key_lines,
    _line_for,
    _shown_field,
    _type_name,
    _unquoted,
)

#: The most faces a brief may ask for: the exact solver and the page are sized for it.
MAX_K = 50
BriefText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
CandidateId = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=64)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]


class BriefError(MatcherError):
    """A brief cannot be used; carries every problem found, each naming file, line and field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        summary = f"{count} problem{'s' if count != 1 else ''} in the brief"
        super().__init__(summary + ":\n" + "\n".join(str(p) for p in self.problems))


class Facet(BaseModel):
    """One facet of the desired image: a short text in English and/or Chinese, and its weight."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    en: BriefText | None = None
    zh: BriefText | None = None
    weight: float = Field(default=1.0, gt=0, le=100)

    @model_validator(mode="after")
    def _has_text(self) -> Facet:
        if self.en is None and self.zh is None:
            raise ValueError("needs a text: en, zh or both")
        return self

    @property
    def texts(self) -> list[str]:
        return [text for text in (self.en, self.zh) if text is not None]


class BriefModel(BaseModel):
    """The fields of a brief file, as validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    product: str = Field(default="", max_length=200)
    k: int = Field(ge=1, le=MAX_K)
    facets: dict[FacetName, Facet] = Field(min_length=1, max_length=40)
    must_include: list[CandidateId] = Field(default_factory=list, max_length=MAX_K)
    must_exclude: list[CandidateId] = Field(default_factory=list, max_length=10_000)
    max_per_category: int | None = Field(default=None, ge=1, le=MAX_K)
    categories: list[Tag] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> BriefModel:
        both = sorted(set(self.must_include) & set(self.must_exclude))
        if both:
            raise ValueError(f"must_include and must_exclude both name {', '.join(both)}")
        if len(set(self.must_include)) > self.k:
            raise ValueError(f"must_include names more candidates than k ({self.k})")
        return self


@dataclass(frozen=True)
class Brief:
    """A loaded brief, with where each of its fields was written (for later errors).

    Attributes:
        facets: facet name to :class:`Facet`, in the order written.
        source: the file name the brief came from (``""`` when built in code).
        lines: dotted field to its line in that file, when known.
    """

    k: int
    facets: dict[str, Facet]
    product: str = ""
    must_include: tuple[str, ...] = ()
    must_exclude: tuple[str, ...] = ()
    max_per_category: int | None = None
    categories: tuple[str, ...] = ()
    source: str = ""
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def facet_names(self) -> list[str]:
        return list(self.facets)

    @property
    def weights(self) -> list[float]:
        return [facet.weight for facet in self.facets.values()]

    def problem(self, field_name: str, message: str) -> BriefError:
        """A :class:`BriefError` about one field of this brief, with its line when known."""
        line = _line_for(field_name, self.lines)
        return BriefError([Problem(self.source or "brief", field_name, message, line)])

    def with_k(self, k: int) -> Brief:
        """The same brief asking for ``k`` faces (the CLI's ``-k`` wins over the file)."""
        if not 1 <= k <= MAX_K:
            raise self.problem("k", f"must be between 1 and {MAX_K}, got {k}")
        if len(set(self.must_include)) > k:
            raise self.problem("must_include", f"names more candidates than k ({k})")
        return Brief(
            k,
            self.facets,
            self.product,
            self.must_include,
            self.must_exclude,
            self.max_per_category,
            self.categories,
            self.source,
            self.lines,
        )

    @classmethod
    def from_model(
        cls, model: BriefModel, source: str = "", lines: dict[str, int] | None = None
    ) -> Brief:
        return cls(
            k=model.k,
            facets=dict(model.facets),
            product=model.product,
            must_include=tuple(dict.fromkeys(model.must_include)),
            must_exclude=tuple(dict.fromkeys(model.must_exclude)),
            max_per_category=model.max_per_category,
            categories=tuple(model.categories),
            source=source,
            lines=dict(lines or {}),
        )


def load_brief(path: str | Path) -> Brief:
    """Read and validate a brief file (YAML, or JSON, which YAML reads too).

    Raises:
        BriefError: every problem found, as ``file:line: field: problem``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BriefError([Problem(path.name, "", f"cannot be read ({exc.strerror})")]) from None
    return parse_brief(path.name, raw)


def parse_brief(file_name: str, raw: bytes) -> Brief:
    """Validate a brief from its bytes (an upload, a file's contents).

    Raises:
        BriefError: every problem found.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise BriefError(
            [Problem(file_name, "", "not valid UTF-8; save the file as UTF-8", bad_line)]
        ) from None
    try:
        node = yaml.compose(text, Loader=SAFE_LOADER)
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = _unquoted(getattr(exc, "problem", None) or "cannot be parsed")
        raise BriefError([Problem(file_name, "", f"not valid YAML: {problem}", line)]) from None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise BriefError(
            [Problem(file_name, "", "must be a mapping of fields (k: ..., facets: ...)")]
        )
    lines, duplicates = _key_lines(node)
    problems = [
        Problem(file_name, _shown_field(name), "appears twice in this file", line)
        for name, line in duplicates
    ]
    try:
        model = BriefModel.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems_from(file_name, exc, lines))
    if problems:
        raise BriefError(problems)
    return Brief.from_model(model, file_name, lines)


def brief_from_dict(data: dict[str, Any], source: str = "") -> Brief:
    """A brief from already-parsed data (JSON from a request, a test).

    Raises:
        BriefError: every problem found (without lines).
    """
    try:
        model = BriefModel.model_validate(json.loads(json.dumps(data)))
    except ValidationError as exc:
        raise BriefError(list(_problems_from(source or "brief", exc, {}))) from None
    return Brief.from_model(model, source)


_FRIENDLY = {"missing": "is required but missing", "extra_forbidden": "is not a known field"}


def _problems_from(file_name: str, exc: ValidationError, lines: dict[str, int]) -> list[Problem]:
    problems = []
    for error in exc.errors():
        # The brief-wide checks (both about must_include) have no location of their own.
        name = ".".join(str(part) for part in error["loc"]) or "must_include"
        message = _FRIENDLY.get(error["type"], error["msg"])
        if error["type"] == "extra_forbidden":
            allowed = BriefModel.model_fields if "." not in name else Facet.model_fields
            message += f" (allowed: {', '.join(allowed)})"
        elif error["type"] == "string_pattern_mismatch" and name.endswith("[key]"):
            name = name.removesuffix(".[key]")
            message = "facet names must be lowercase letters, digits and underscores"
        elif error["type"] == "string_pattern_mismatch":
            message = "must be a candidate id: lowercase letters and digits joined by '-'"
        elif error["type"] == "string_too_short":
            message = "is empty"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        elif "input" in error and error["type"].endswith("_type"):
            message += f", got {_type_name(error['input'])}"
        problems.append(Problem(file_name, _shown_field(name), message, _line_for(name, lines)))
    return problems
