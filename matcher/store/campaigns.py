"""Campaigns: one brand launch each, with its own roster and its own privacy settings.

One instance serves several campaigns. What a campaign may keep is decided
here, per campaign: whether a consenting shopper's text is stored at all,
which consent notice (and version) the shopper agreed to, and how long
pairings are kept before :func:`matcher.store.privacy.purge_expired` removes
them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..errors import ConfigError, InputError
from ..origins import parse_origins
from .database import Database
from .schema import CampaignRow, as_utc

DEFAULT_SLUG = "default"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"
#: How long the sample campaign keeps pairings.
DEFAULT_RETENTION_DAYS = 180
DEFAULT_CONSENT_TEXT = (
    "Keep what I wrote with my pairing for up to 180 days, to improve this campaign. "
    "I can ask for a copy or for deletion at any time by quoting my reference. "
    "保存我填写的内容及匹配结果，最长 180 天，用于改进本次活动；"
    "我可以随时凭参考编号索取副本或要求删除。"
)
DEFAULT_CONSENT_VERSION = "1"
#: The time zone of a new campaign's dashboard days: the sample brand launches in China.
DEFAULT_TIME_ZONE = "Asia/Shanghai"

Short = Annotated[str, Field(min_length=1, max_length=200)]


class CampaignSettings(BaseModel):
    """What a planner sets for a campaign; checked before anything is stored."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    slug: Annotated[str, Field(pattern=SLUG_PATTERN)]
    name: Short
    brand: Short
    profiles_dir: Annotated[str, Field(min_length=1, max_length=1000)]
    embed_origins: list[str] = []
    quick_picks: dict[str, list[str]] | None = None
    consent_text: Annotated[str, Field(min_length=1, max_length=4000)] = DEFAULT_CONSENT_TEXT
    consent_version: Annotated[str, Field(min_length=1, max_length=40)] = DEFAULT_CONSENT_VERSION
    retention_days: Annotated[int, Field(ge=1, le=3650)] = DEFAULT_RETENTION_DAYS
    store_text: bool = False
    #: The IANA time zone the dashboard counts the campaign's days in.
    time_zone: Annotated[str, Field(min_length=1, max_length=64)] = DEFAULT_TIME_ZONE

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone: use a name such as Asia/Shanghai or Europe/Paris"
            ) from None
        return value

    @field_validator("embed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> list[str]:
        try:
            return parse_origins(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class Campaign(CampaignSettings):
    """A stored campaign."""

    id: int
    index_version: str | None = None
    created_at: datetime
    updated_at: datetime


def check_settings(values: dict[str, Any]) -> CampaignSettings:
    """Validate planner input.

    Raises:
        InputError: one line per problem, naming the field.
    """
    try:
        return CampaignSettings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'campaign'}: {_message(error)}"
            for error in exc.errors()
        )
        raise InputError(problems) from None


def _message(error: Any) -> str:
    if error["type"] == "string_pattern_mismatch":
        return "use 1 to 40 lower-case letters, digits and dashes, starting with a letter or digit"
    return str(error["msg"]).removeprefix("Value error, ")


def _campaign(row: CampaignRow) -> Campaign:
    values = {column: getattr(row, column) for column in Campaign.model_fields}
    # The same campaign compares equal whether just created or read back, on any backend.
    values["created_at"] = as_utc(row.created_at)
    values["updated_at"] = as_utc(row.updated_at)
    return Campaign.model_validate(values)


def list_campaigns(db: Database) -> list[Campaign]:
    with db.read() as session:
        rows = session.scalars(select(CampaignRow).order_by(CampaignRow.id)).all()
        return [_campaign(row) for row in rows]


def find_campaign(db: Database, slug: str) -> Campaign | None:
    with db.read() as session:
        row = session.scalars(select(CampaignRow).where(CampaignRow.slug == slug)).first()
        return _campaign(row) if row is not None else None


def get_campaign(db: Database, slug: str) -> Campaign:
    """Raises: InputError when there is no campaign ``slug``."""
    campaign = find_campaign(db, slug)
    if campaign is None:
        raise InputError(f"there is no campaign {slug!r}")
    return campaign


def create_campaign(db: Database, settings: CampaignSettings) -> Campaign:
    """Raises: InputError when the slug is taken."""
    with db.write() as session:
        taken = session.scalars(select(CampaignRow.id).where(CampaignRow.slug == settings.slug))
        if taken.first() is not None:
            raise InputError(f"slug: a campaign {settings.slug!r} already exists")
        row = CampaignRow(**settings.model_dump(), index_version=None)
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            # PostgreSQL: another worker inserted the slug after our check (SQLite's
            # BEGIN IMMEDIATE rules that out), which ensure_campaign must see as "taken".
            raise InputError(f"slug: a campaign {settings.slug!r} already exists") from None
        return _campaign(row)


def ensure_campaign(db: Database, settings: CampaignSettings) -> Campaign:
    """The campaign ``settings.slug``, created with ``settings`` if it does not exist yet."""
    existing = find_campaign(db, settings.slug)
    if existing is not None:
        return existing
    try:
        return create_campaign(db, settings)
    except InputError:  # another worker created it meanwhile
        return get_campaign(db, settings.slug)


def update_campaign(db: Database, slug: str, changes: dict[str, Any]) -> Campaign:
    """Apply planner changes (checked as a whole), keeping the slug.

    Raises:
        InputError: no such campaign, or a changed value is not valid.
    """
    with db.write() as session:
        row = session.scalars(select(CampaignRow).where(CampaignRow.slug == slug)).first()
        if row is None:
            raise InputError(f"there is no campaign {slug!r}")
        current = _campaign(row).model_dump(include=set(CampaignSettings.model_fields))
        settings = check_settings({**current, **changes, "slug": slug})
        for field, value in settings.model_dump().items():
            setattr(row, field, value)
        session.flush()
        return _campaign(row)


def note_index_version(db: Database, slug: str, version: str) -> None:
    """Record the index version the campaign's matcher now serves."""
    with db.write() as session:
        row = session.scalars(select(CampaignRow).where(CampaignRow.slug == slug)).first()
        if row is not None and row.index_version != version:
            row.index_version = version


def default_campaign_settings(profiles_dir: str) -> CampaignSettings:
    """The campaign every instance starts with: the roster it was started on.

    It keeps a consenting shopper's text, so the whole privacy flow (consent,
    storage, export, deletion) can be seen on the sample roster.
    """
    return CampaignSettings(
        slug=DEFAULT_SLUG,
        name="Lueur launch",
        brand="Lueur",
        profiles_dir=profiles_dir,
        store_text=True,
    )
