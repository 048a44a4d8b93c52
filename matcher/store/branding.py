"""Campaign branding: how a campaign's shopper pages look and read, set by a planner.

One :class:`Branding` document per campaign (colours, fonts, copy and consent
per language, facet labels, and per celebrity a display name, a line per
facet and a call-to-action link), validated with pydantic before it is
stored. Every field is optional: what a planner leaves out, the web layer
fills with neutral defaults made from the campaign's own name and brand, in
the page's language, never with another campaign's words.

Images (a logo, a portrait per celebrity) are in :mod:`matcher.store.brand_images`;
results a shopper can reopen or share in :mod:`matcher.store.shares`.

The sample roster's campaign ("Maison Aurelle · Lueur") is data like any
other: :func:`sample_branding` is its seed, used only for a campaign serving
exactly the sample roster.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import InputError
from ..limits import MAX_PICK_CHARS, MAX_PICKS
from ..text import has_controls
from .database import Database
from .schema import CampaignBrandingRow

#: The languages every page is written in; copy is set per language.
LANGUAGES = ("en", "zh")
Lang = Literal["en", "zh"]

#: Font stacks a planner chooses from: local fonts only (no CDN), each with Chinese fallbacks.
FONT_STACKS: dict[str, str] = {
    "modern": (
        'system-ui, -apple-system, "Segoe UI", "Helvetica Neue", "PingFang SC", '
        '"Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif'
    ),
    "serif": (
        '"Iowan Old Style", "Palatino Linotype", Palatino, "Book Antiqua", Georgia, '
        '"Songti SC", "Noto Serif CJK SC", "Source Han Serif SC", SimSun, serif'
    ),
    "didone": (
        'Didot, "Bodoni 72", "Bodoni MT", "Noto Serif Display", "Playfair Display", Georgia, '
        '"Songti SC", "Noto Serif CJK SC", "Source Han Serif SC", serif'
    ),
    "geometric": (
        'Futura, "Century Gothic", "Avenir Next", Avenir, "Trebuchet MS", "PingFang SC", '
        '"Microsoft YaHei", "Noto Sans CJK SC", sans-serif'
    ),
}
FontName = Literal["modern", "serif", "didone", "geometric"]

#: WCAG AA: body text against its background.
MIN_TEXT_CONTRAST = 4.5
#: WCAG 1.4.11: a button's edge against the page.
MIN_EDGE_CONTRAST = 3.0


def _plain(value: str) -> str:
    # PostgreSQL refuses NUL in text; an escape character has no place on a page.
    if has_controls(value):
        raise ValueError("remove the control characters (such as NUL)")
    return value


Text60 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=60),
    AfterValidator(_plain),
]
Text120 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120),
    AfterValidator(_plain),
]
Text200 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_plain),
]
Text600 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=600),
    AfterValidator(_plain),
]
Text4000 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=4000),
    AfterValidator(_plain),
]
Version = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=36),
    AfterValidator(_plain),
]
Pick = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PICK_CHARS),
    AfterValidator(_plain),
]
Colour = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True)]
FacetKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
CelebrityKey = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=64)
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hex(value: str) -> tuple[float, float, float]:
    return tuple(int(value[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def luminance(colour: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in _hex(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours, from 1 to 21."""
    a, b = sorted((luminance(first), luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def mix(first: str, second: str, share: float) -> str:
    """``first`` moved ``share`` of the way towards ``second``."""
    channels = [
        round((a + (b - a) * share) * 255) for a, b in zip(_hex(first), _hex(second), strict=True)
    ]
    return "#" + "".join(f"{c:02x}" for c in channels)


class Colours(_Model):
    """Text, page and accent (buttons, marks); checked so that every page stays readable."""

    ink: Colour = "#1c1b1a"
    paper: Colour = "#faf9f7"
    accent: Colour = "#1c1b1a"

    @field_validator("ink", "paper", "accent")
    @classmethod
    def _colour(cls, value: str) -> str:
        if re.fullmatch(r"#[0-9a-f]{3}", value):
            value = "#" + "".join(c * 2 for c in value[1:])
        if not re.fullmatch(r"#[0-9a-f]{6}", value):
            raise ValueError("give a colour as #rrggbb, such as #8a5a2b")
        return value

    @model_validator(mode="after")
    def _readable(self) -> Colours:
        ratio = contrast(self.ink, self.paper)
        if ratio < MIN_TEXT_CONTRAST:
            raise ValueError(
                f"the text colour on the page colour has a contrast of {ratio:.1f}:1; "
                f"text needs at least {MIN_TEXT_CONTRAST}:1 to stay readable"
            )
        if contrast(self.accent, self.on_accent) < MIN_TEXT_CONTRAST:
            raise ValueError(
                "the accent colour is too mid-toned: neither white nor the text colour can be "
                f"read on it at {MIN_TEXT_CONTRAST}:1; choose a darker or a lighter accent"
            )
        edge = contrast(self.accent, self.paper)
        if edge < MIN_EDGE_CONTRAST:
            raise ValueError(
                f"the accent colour on the page colour has a contrast of {edge:.1f}:1; "
                f"buttons need at least {MIN_EDGE_CONTRAST}:1 to be seen"
            )
        return self

    @property
    def on_accent(self) -> str:
        """The label colour for a button: white or the text colour, whichever reads better."""
        white = "#ffffff"
        return (
            white if contrast(self.accent, white) >= contrast(self.accent, self.ink) else self.ink
        )

    @property
    def muted(self) -> str:
        """A quieter text colour that still reads at :data:`MIN_TEXT_CONTRAST` on the page."""
        for share in (0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05):
            colour = mix(self.ink, self.paper, share)
            if contrast(colour, self.paper) >= MIN_TEXT_CONTRAST:
                return colour
        return self.ink

    @property
    def line(self) -> str:
        """Hairlines and borders."""
        return mix(self.paper, self.ink, 0.14)


class PickGroup(_Model):
    """One group of quick picks on the form, in one language."""

    label: Text60
    picks: Annotated[list[Pick], Field(min_length=1, max_length=MAX_PICKS)]


class Copy(_Model):
    """What the shopper pages say in one language; a field left out gets the neutral default."""

    headline: Text200 | None = None
    intro: Text600 | None = None
    #: The label of the text box: what to write about.
    prompt: Text200 | None = None
    #: The form's submit button.
    button: Text60 | None = None
    #: The line above the celebrity's name on the result, such as "Your Lueur muse".
    result_heading: Text120 | None = None
    #: The call to action's label, such as "Request a sample".
    cta_label: Text60 | None = None
    #: The share page's title and its WeChat/Weibo description.
    share_text: Text200 | None = None
    consent_text: Text4000 | None = None
    consent_version: Version | None = None
    #: Empty: the campaign's own picks (its settings), or a neutral set.
    quick_picks: Annotated[list[PickGroup], Field(max_length=4)] = []


class CelebrityBranding(_Model):
    """How one celebrity is shown to shoppers."""

    display_name: dict[Lang, Text60] = {}
    #: Where the call to action goes: a product page, a sample request, a coupon (http or https).
    cta_url: str | None = None
    #: A line per facet per language, shown as the reason when that facet matched.
    lines: dict[FacetKey, dict[Lang, Text200]] = {}

    @field_validator("cta_url", mode="before")
    @classmethod
    def _url(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError("give the link as text")
        value = value.strip()
        if len(value) > 1000:
            raise ValueError("keep the link under 1000 characters")
        if re.search(r"[\s\x00-\x1f\x7f\\]", value):
            raise ValueError("a link has no spaces, line breaks or backslashes")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("give a full web address starting with https:// (or http://)")
        if parts.username or parts.password:
            raise ValueError("a link may not carry a user name or password")
        return value


class Branding(_Model):
    """A campaign's look and words; see the module docstring."""

    #: Shown in the header beside (or instead of) the logo; default: the campaign's brand.
    brand_name: Text120 | None = None
    colours: Colours = Colours()
    heading_font: FontName = "modern"
    body_font: FontName = "modern"
    copy_: dict[Lang, Copy] = Field(default={}, alias="copy")
    #: A label per facet per language ("scent" / "香气"), for facets a roster names itself too.
    facet_labels: dict[FacetKey, dict[Lang, Text60]] = {}
    celebrities: dict[CelebrityKey, CelebrityBranding] = {}

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def copy_for(self, lang: str) -> Copy:
        found: Copy | None = self.copy_.get(lang)  # type: ignore[call-overload]
        return found if found is not None else Copy()

    def celebrity(self, celebrity_id: str) -> CelebrityBranding:
        return self.celebrities.get(celebrity_id, CelebrityBranding())

    def dump(self) -> dict[str, Any]:
        """As stored: only what was set, keyed as the planner's form names it."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def problems_of(exc: ValidationError) -> dict[str, str]:
    """A message per field, keyed by its dotted path (``copy.zh.headline``)."""
    found: dict[str, str] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"] if not str(part).isdigit())
        # A line in a list (a pick group): the list's field.
        found.setdefault(path or "branding", _message(error))
    return found


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "string_too_long":
        return f"keep it to {ctx.get('max_length')} characters at most"
    if kind == "string_too_short":
        return "fill this in, or leave the whole field empty"
    if kind == "too_long":
        return f"give at most {ctx.get('max_length')}"
    if kind == "literal_error":
        return f"choose one of {ctx.get('expected')}"
    if kind == "string_pattern_mismatch":
        return "use lower-case letters, digits, dashes or underscores"
    if kind == "extra_forbidden":
        return "is not a branding setting"
    return str(error["msg"]).removeprefix("Value error, ")


def check_branding(values: dict[str, Any]) -> Branding:
    """Validate a branding document.

    Raises:
        InputError: one ``field: problem`` per problem, fields as dotted paths.
    """
    try:
        return Branding.model_validate(values)
    except ValidationError as exc:
        problems = problems_of(exc)
        raise InputError("; ".join(f"{k}: {v}" for k, v in problems.items())) from None


# -- stored branding ------------------------------------------------------------------------


def find_branding(db: Database, campaign_id: int) -> Branding | None:
    """The campaign's stored branding, or ``None`` when a planner never set any."""
    with db.read() as session:
        row = session.get(CampaignBrandingRow, campaign_id)
        return Branding.model_validate(row.settings) if row is not None else None


def save_branding(db: Database, campaign_id: int, branding: Branding) -> Branding:
    """Store ``branding`` for the campaign, replacing what was there."""
    with db.write() as session:
        row = session.get(CampaignBrandingRow, campaign_id)
        if row is None:
            session.add(CampaignBrandingRow(campaign_id=campaign_id, settings=branding.dump()))
        else:
            row.settings = branding.dump()
    return branding


def sample_branding() -> Branding:
    """The sample roster's campaign, "Maison Aurelle · Lueur": its seed, as data."""
    return Branding.model_validate(SAMPLE_BRANDING)


#: The shipped sample roster's celebrities: a campaign serving exactly these gets the sample seed.
SAMPLE_CELEBRITIES = frozenset(
    {"chen-an", "gu-yan", "lin-yue", "su-qing", "tang-xiaoxi", "xu-mo", "zhao-feng"}
)


def branding_for(db: Database, campaign_id: int, celebrity_ids: frozenset[str]) -> Branding:
    """What the campaign's pages show: its stored branding, else the seed or the neutral default.

    Only a campaign serving exactly the sample roster gets the sample's seed;
    every other campaign without branding gets neutral defaults.
    """
    stored = find_branding(db, campaign_id)
    if stored is not None:
        return stored
    if celebrity_ids == SAMPLE_CELEBRITIES:
        return sample_branding()
    return Branding()


_SAMPLE_SHOP = "https://maison-aurelle.example/lueur"

SAMPLE_BRANDING: dict[str, Any] = {
    "brand_name": "Maison Aurelle · Lueur",
    "colours": {"ink": "#1d1a17", "paper": "#fbf8f4", "accent": "#7a4d22"},
    "heading_font": "didone",
    "body_font": "modern",
    "copy": {
        "en": {
            "headline": "Find your Lueur celebrity",
            "intro": (
                "Seven celebrities, seven sides of one fragrance. Tell us about yourself "
                "and we will pair you with the one who fits you best."
            ),
            "prompt": "What do you like? Your style, a place, a scent, a weekend…",
            "result_heading": "Your Lueur muse",
            "cta_label": "Discover their Lueur",
            "share_text": "My Lueur muse",
        },
        "zh": {
            "headline": "找到你的 Lueur 明星",
            "intro": (
                "七位明星，演绎同一款香水的七种面貌。说说你自己，我们会为你匹配最契合的那一位。"
            ),
            "prompt": "你喜欢什么？你的风格、一个地方、一种香气、一个周末……",
            "result_heading": "你的 Lueur 缪斯",
            "cta_label": "探索 TA 的 Lueur",
            "share_text": "我的 Lueur 缪斯",
        },
    },
    "celebrities": {
        celebrity: {"cta_url": f"{_SAMPLE_SHOP}?muse={celebrity}"}
        for celebrity in sorted(SAMPLE_CELEBRITIES)
    },
}
