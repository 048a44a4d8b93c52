"""The matcher: pair shoppers with the campaign celebrity whose brand profile fits them best.

This package is the pure core. It never imports the web layer, so it can run
in a batch job, a notebook or a test without Flask.
"""

from __future__ import annotations

from .confidence import Assessment, Doubt, Thresholds
from .errors import (
    BatchInputError,
    ConfigError,
    IndexStateError,
    InputError,
    MatcherError,
    Problem,
    ProfileError,
)
from .profiles import Profile, Roster, load_profiles

__all__ = [
    "Assessment",
    "BatchInputError",
    "ConfigError",
    "Doubt",
    "IndexStateError",
    "InputError",
    "MatcherError",
    "Problem",
    "Profile",
    "ProfileError",
    "Roster",
    "Thresholds",
    "load_profiles",
]
