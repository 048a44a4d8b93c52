"""One exception tree for everything the core refuses.

Callers (the CLI, the web layer) catch :class:`MatcherError` and show its
message; anything else escaping the core is a bug, not a user mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class MatcherError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one profile file.

    Attributes:
        file: the file name, as the planner sees it in ``profiles/``.
        field: the dotted field path (``facets.scent``), or ``""`` for the whole file.
        message: what is wrong, in plain words.
        line: the 1-based line of the field in the file, when known.
    """

    file: str
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '(file)'}: {self.message}"


class ProfileError(MatcherError):
    """The roster cannot be loaded; carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        summary = f"{count} problem{'s' if count != 1 else ''} in the profiles"
        super().__init__(summary + ":\n" + "\n".join(str(p) for p in self.problems))


class InputError(MatcherError, ValueError):
    """A shopper text or a request argument is unusable (blank, too long, bad k...)."""


class IndexStateError(MatcherError):
    """A stored index is missing, corrupt or built for another model; rebuild it."""


class ConfigError(MatcherError):
    """A setting (model name, path) cannot be used."""


class BatchInputError(MatcherError):
    """A batch input file cannot be read at all (missing column, unknown format)."""
