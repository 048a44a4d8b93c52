"""Campaign branding: validation, defaults, the sample seed, a second brand's pages, portraits,
the call-to-action redirect and the shared result page.

Pages are served by the real app on a real database (SQLite, and PostgreSQL
when configured) with the hashing encoder on small rosters, so each pairing
follows from the words of the text; the sample roster's campaign is checked
on the real model in ``test_web.py``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select

from matcher.errors import InputError
from matcher.index import build_index
from matcher.matching import Matcher
from matcher.profiles import load_profiles
from matcher.store import CampaignSettings, create_campaign, find_campaign
from matcher.store.brand_images import prepare_image
from matcher.store.branding import (
    SAMPLE_CELEBRITIES,
    Branding,
    branding_for,
    check_branding,
    contrast,
    sample_branding,
    save_branding,
)
from matcher.store.schema import CampaignEventRow, PairingRow, SharedResultRow

from .conftest import SAMPLE_PROFILES, make_app, write_roster
from .fakes import HashingEncoder
from .planner.conftest import login, post
from .test_web import token_from

# A watch brand's three faces; "craft" is a facet of this roster's own.
ACME_ROSTER = {
    "iris.yaml": """\
        id: iris
        name: Iris Vale
        name_zh: 艾瑞丝
        tagline: Time, worn lightly.
        tagline_zh: 让时间轻盈。
        facets:
          style: minimal steel bracelet, white dial, linen shirts
          craft: hand finished movements and guilloche dials
          audience: architects and designers who love clean lines
        tags: [steel]
        """,
    "marco.yaml": """\
        id: marco
        name: Marco Stone
        name_zh: 马可
        tagline: Built for the deep.
        tagline_zh: 为深海而生。
        facets:
          style: rubber strap diver watch, wetsuit, boat deck
          craft: pressure tested cases and luminous hands
          audience: divers sailors and surfers on the open sea
        tags: [diver]
        """,
    "lena.yaml": """\
        id: lena
        name: Lena Gold
        name_zh: 莲娜
        tagline: An evening heirloom.
        tagline_zh: 传世的夜晚。
        facets:
          style: gold case, crocodile strap, evening gowns
          craft: enamel and gem setting by master artisans
          audience: collectors and opera lovers at gala nights
        tags: [gold]
        """,
}
DIVER = "I dive from a boat every weekend, wetsuit on, open sea and surfers around"
ACME = {
    "brand_name": "ACME Horlogerie",
    "colours": {"ink": "#101820", "paper": "#f4f1ea", "accent": "#0b3d2e"},
    "heading_font": "didone",
    "copy": {
        "en": {
            "headline": "Which ACME watch keeps your time?",
            "intro": "Three faces, three ways to wear time.",
            "cta_label": "Book a fitting",
            "consent_text": "Keep my words for 30 days to improve ACME's campaign.",
            "consent_version": "a1",
        },
        "zh": {
            "headline": "哪一款 ACME 腕表属于你？",
            "intro": "三位代言人，三种佩戴时间的方式。",
            "cta_label": "预约试戴",
            "consent_text": "同意 ACME 保存我填写的内容 30 天，用于改进本次活动。",
            "consent_version": "a1",
        },
    },
    "facet_labels": {"craft": {"en": "watchmaking", "zh": "制表工艺"}},
    "celebrities": {
        "marco": {
            "display_name": {"zh": "马可·斯通"},
            "cta_url": "https://acme.example/diver?utm_source=matcher",
            "lines": {
                "audience": {"en": "Marco dives where you dive.", "zh": "马可和你潜在同一片海。"}
            },
        }
    },
}


def png(width: int = 400, height: int = 500, colour: str = "#8a5a2b", mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), colour).save(out, "PNG")
    return out.getvalue()


# -- validation ---------------------------------------------------------------------------


def test_contrast_follows_the_wcag_formula() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#777777") == pytest.approx(1.0)
    # WCAG's own example: #767676 on white is the lightest grey at 4.5:1.
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        pytest.param({"colours": {"ink": "#999999", "paper": "#ffffff"}}, "colours", "contrast",
                     id="grey-on-white"),
        pytest.param({"colours": {"accent": "#ff8800", "ink": "#808080", "paper": "#ffffff"}},
                     "colours", "contrast", id="mid-accent"),
        pytest.param({"colours": {"paper": "#fff", "ink": "#000", "accent": "#fafafa"}},
                     "colours", "buttons", id="invisible-button"),
        pytest.param({"colours": {"ink": "black"}}, "colours.ink", "#rrggbb", id="colour-name"),
        pytest.param({"heading_font": "Comic Sans"}, "heading_font", "choose one of",
                     id="unknown-font"),
        pytest.param({"copy": {"fr": {"headline": "Bonjour"}}}, "copy.fr", "'en' or 'zh'",
                     id="unknown-language"),
        pytest.param({"copy": {"en": {"headline": "x" * 201}}}, "copy.en.headline", "200",
                     id="long-headline"),
        pytest.param({"copy": {"zh": {"intro": "bad\x00byte"}}}, "copy.zh", "control",
                     id="nul"),
        pytest.param({"celebrities": {"x": {"cta_url": "javascript:alert(1)"}}},
                     "celebrities.x.cta_url", "https://", id="javascript-link"),
        pytest.param({"celebrities": {"x": {"cta_url": "//evil.example/"}}},
                     "celebrities.x.cta_url", "https://", id="scheme-relative-link"),
        pytest.param({"celebrities": {"x": {"cta_url": "https://u:p@shop.example/"}}},
                     "celebrities.x.cta_url", "password", id="credentials-in-link"),
        pytest.param({"celebrities": {"x": {"cta_url": "https://shop.example/a b"}}},
                     "celebrities.x.cta_url", "spaces", id="space-in-link"),
        pytest.param({"celebrities": {"Bad Id": {}}}, "celebrities.Bad Id", "lower-case",
                     id="bad-celebrity-id"),
        pytest.param({"logo": "x"}, "logo", "not a branding setting", id="unknown-field"),
    ],
)  # fmt: skip
def test_bad_branding_is_refused_naming_the_field(
    values: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InputError) as caught:
        check_branding(values)
    message = str(caught.value)
    assert f"{field}" in message and words in message, message


def test_a_good_branding_round_trips_as_stored() -> None:
    branding = check_branding(ACME)
    assert branding.colours.accent == "#0b3d2e"
    assert branding.celebrity("marco").cta_url == ACME["celebrities"]["marco"]["cta_url"]
    assert Branding.model_validate(branding.dump()) == branding
    # Only what was set is stored: a default is not written down as if chosen.
    assert "body_font" not in branding.dump()


def test_short_colours_are_widened_and_labels_read_on_the_accent() -> None:
    colours = check_branding({"colours": {"ink": "#000", "paper": "#fff", "accent": "#123"}})
    assert colours.colours.accent == "#112233"
    assert colours.colours.on_accent == "#ffffff"
    light = check_branding({"colours": {"ink": "#111111", "paper": "#ffffff", "accent": "#1f6f5c"}})
    assert contrast(light.colours.muted, "#ffffff") >= 4.5


def test_the_sample_seed_is_the_sample_roster_and_only_its_campaign_gets_it(
    sqlite_database: Any,
) -> None:
    ids = frozenset(p.id for p in load_profiles(SAMPLE_PROFILES))
    assert ids == SAMPLE_CELEBRITIES
    seed = sample_branding()
    assert seed.brand_name == "Maison Aurelle · Lueur"
    assert seed.copy_for("zh").headline and "，" in (seed.copy_for("zh").intro or "")
    campaign = create_campaign(
        sqlite_database, CampaignSettings(slug="other", name="O", brand="O", profiles_dir="x")
    )
    assert branding_for(sqlite_database, campaign.id, ids) == seed
    assert branding_for(sqlite_database, campaign.id, frozenset({"iris"})) == Branding()
    mine = check_branding({"brand_name": "Mine"})
    save_branding(sqlite_database, campaign.id, mine)
    assert branding_for(sqlite_database, campaign.id, ids) == mine


# -- images -------------------------------------------------------------------------------


def test_a_portrait_is_re_encoded_as_a_bounded_jpeg() -> None:
    image = prepare_image(png(1600, 2000, mode="RGBA"))
    decoded = Image.open(io.BytesIO(image.data))
    assert decoded.format == "JPEG" and image.content_type == "image/jpeg"
    assert max(decoded.size) == 720 and decoded.size == (576, 720)
    assert (image.width, image.height) == decoded.size


def test_a_logo_keeps_its_transparency() -> None:
    image = prepare_image(png(300, 100, "#00000000", mode="RGBA"), logo=True)
    decoded = Image.open(io.BytesIO(image.data))
    assert decoded.format == "PNG" and decoded.mode == "RGBA"
    assert decoded.getpixel((0, 0))[3] == 0


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 300)).save(out, "GIF")
    return out.getvalue()


def _bomb() -> bytes:
    # A valid PNG header claiming 30,000 x 30,000 pixels: decoding it would take gigabytes.
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a JPEG", id="svg"),
        pytest.param(b"GIF89a" + b"\0" * 64, "not a JPEG", id="gif-bytes"),
        pytest.param(_gif(), "not a JPEG", id="real-gif"),
        pytest.param(png()[:60], "damaged", id="truncated"),
        pytest.param(png(100, 100), "too small", id="tiny"),
        pytest.param(b"\xff\xd8" + b"\0" * (6 * 1024 * 1024), "MB", id="too-large"),
        pytest.param(_bomb(), "than we take", id="pixel-bomb"),
    ],
)
def test_bad_images_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(InputError, match=words):
        prepare_image(data)


# -- a second campaign's pages ------------------------------------------------------------


def _matcher(folder: Path) -> Matcher:
    encoder = HashingEncoder(dimension=4096)
    index, _ = build_index(load_profiles(folder), encoder)
    return Matcher(encoder, index)


@pytest.fixture
def shop(tmp_path: Path, roster_dir: Path, database_url: str) -> Iterator[Flask]:
    """The tiny roster as the default campaign, and "acme", a watch campaign, beside it."""
    acme = write_roster(tmp_path / "acme", ACME_ROSTER)
    app = make_app(
        tmp_path,
        _matcher(roster_dir),
        MATCHER_PROFILES=str(roster_dir),
        MATCHER_DATABASE_URL=database_url,
    )
    db = app.extensions["matcher.db"]
    create_campaign(
        db,
        CampaignSettings(
            slug="acme", name="ACME autumn", brand="ACME", profiles_dir=str(acme), store_text=True
        ),
    )
    yield app
    db.dispose()


@pytest.fixture
def acme(shop: Flask) -> Flask:
    campaign = find_campaign(shop.extensions["matcher.db"], "acme")
    assert campaign is not None
    save_branding(shop.extensions["matcher.db"], campaign.id, check_branding(ACME))
    return shop


def pair_at(client: FlaskClient, path: str, text: str, **fields: str) -> Any:
    token = token_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"token": token, "text": text, **fields})


def test_a_campaign_without_branding_gets_neutral_defaults_of_its_own(shop: Flask) -> None:
    client = shop.test_client()
    for lang, headline in (
        ("en", "Find the ACME celebrity who matches you"),
        ("zh", "找到与你最合拍的ACME明星"),
    ):
        page = client.get(f"/c/acme/?lang={lang}").get_data(as_text=True)
        assert headline in page
        assert 'class="brand" href="/c/acme/' in page and ">ACME</a>" in page
        for sample in ("Maison Aurelle", "Lueur", "Seven celebrities", "woody", "木质"):
            assert sample not in page, sample


@pytest.mark.parametrize(
    ("lang", "shown", "absent"),
    [
        pytest.param("en", ["Which ACME watch keeps your time?", "Three faces",
                            "Keep my words for 30 days"], ["哪一款", "同意 ACME"], id="en"),
        pytest.param("zh", ["哪一款 ACME 腕表属于你？", "三位代言人", "同意 ACME 保存"],
                     ["Which ACME", "Keep my words"], id="zh"),
    ],
)  # fmt: skip
def test_a_second_campaign_shows_its_own_brand_in_each_language(
    acme: Flask, lang: str, shown: list[str], absent: list[str]
) -> None:
    client = acme.test_client()
    page = client.get(f"/c/acme/?lang={lang}").get_data(as_text=True)
    for words in shown:
        assert words in page, words
    for words in [*absent, "Maison Aurelle", "Lueur"]:
        assert words not in page, words
    css_url = re.search(r'<link rel="stylesheet" href="(/c/acme/brand\.css\?v=\w+)">', page)
    assert css_url, "the campaign's own stylesheet"
    css = client.get(css_url.group(1))
    assert css.mimetype == "text/css" and "--accent: #0b3d2e" in css.get_data(as_text=True)
    assert "immutable" in css.headers["Cache-Control"]
    # The default campaign keeps its own (neutral) look.
    assert "ACME" not in client.get(f"/?lang={lang}").get_data(as_text=True)


def test_the_result_reads_in_the_page_language_with_planner_lines(acme: Flask) -> None:
    client = acme.test_client()
    response = pair_at(client, "/c/acme/?lang=zh", DIVER, lang="zh")
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    result = page[page.index('id="result"') :]
    assert 'data-celebrity-id="marco"' in page
    assert '<span class="name">马可·斯通</span>' in result
    assert "马可和你潜在同一片海。" in result  # the planner's line for the audience facet
    assert "divers sailors" not in page  # never the profile's briefing copy
    assert "为深海而生。" in result
    # Chinese punctuation only in the reasons, and no English facet key.
    reasons = result[result.index('<ul class="reasons">') : result.index("</ul>")]
    assert not re.search(r"[A-Za-z,.:;!?]", re.sub(r"<[^>]+>", "", reasons)), reasons
    assert "预约试戴" in result


def test_a_custom_facet_is_never_an_english_key_on_a_chinese_page(shop: Flask) -> None:
    client = shop.test_client()
    response = pair_at(client, "/c/acme/?lang=zh", "enamel gem setting master artisans", lang="zh")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    reasons = page[page.index('<ul class="reasons">') : page.index("</ul>")]
    assert "craft" not in reasons
    assert re.search(r"[\u4e00-\u9fff]", reasons)
    english = pair_at(client, "/c/acme/?lang=en", "enamel gem setting master artisans", lang="en")
    page = client.get(english.headers["Location"]).get_data(as_text=True)
    assert "You are close to Lena Gold in craft." in page


@pytest.mark.parametrize("facet", ["style", "values", "lifestyle", "scent", "audience", "craft"])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_facet_reads_as_a_sentence(shop: Flask, facet: str, lang: str) -> None:
    from web.branding import Brand

    campaign = find_campaign(shop.extensions["matcher.db"], "acme")
    assert campaign is not None
    profile = next(iter(load_profiles(Path(campaign.profiles_dir))))
    with shop.test_request_context(f"/?lang={lang}"):
        line = Brand(campaign, Branding(), lang, {}).reason_line(profile, facet)
    name = profile.name_zh if lang == "zh" else profile.name
    assert name in line
    assert "their the" not in line and "%(" not in line
    if lang == "zh":
        assert line.endswith("。") and not re.search(r"[,.:;!?]", line), line
        assert facet not in line
    else:
        assert line[0].isupper() and line.endswith("."), line


# -- the result page and sharing ----------------------------------------------------------


def test_posting_redirects_to_a_result_that_reloads_without_resubmitting(acme: Flask) -> None:
    client = acme.test_client()
    response = pair_at(client, "/c/acme/?lang=en", DIVER, lang="en", consent="yes")
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.match(r"^/c/acme/r/[A-Za-z0-9_-]{22}\?o=", location), location
    first = client.get(location)
    again = client.get(location)
    assert first.status_code == again.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    db = acme.extensions["matcher.db"]
    with db.read() as session:
        rows = list(session.scalars(select(PairingRow)))
        shares = session.scalar(select(func.count()).select_from(SharedResultRow))
    assert len(rows) == 1 and shares == 1
    assert rows[0].consent_version == "a1" and rows[0].shopper_text == DIVER
    page = first.get_data(as_text=True)
    assert f"<code>{rows[0].shopper_ref}</code>" in page
    assert "We kept what you wrote" in page


def test_a_chinese_consent_records_the_chinese_version(acme: Flask) -> None:
    client = acme.test_client()
    pair_at(client, "/c/acme/?lang=zh", DIVER, lang="zh", consent="yes")
    with acme.extensions["matcher.db"].read() as session:
        (row,) = session.scalars(select(PairingRow))
    assert row.consent_version == "zh:a1"


def test_the_shared_page_holds_no_shopper_text_nor_reference(acme: Flask) -> None:
    client = acme.test_client()
    secret = "wetsuit open sea boat surfers dive 4417"
    response = pair_at(client, "/c/acme/?lang=en", secret, lang="en", consent="yes")
    owner = client.get(response.headers["Location"]).get_data(as_text=True)
    share_url = re.search(r'<a class="share-link" href="([^"]+)"', owner)
    assert share_url, "the result offers its link"
    assert "?o=" not in share_url.group(1)
    shared = acme.test_client().get(share_url.group(1).replace("http://localhost", ""))
    assert shared.status_code == 200
    page = shared.get_data(as_text=True)
    with acme.extensions["matcher.db"].read() as session:
        (row,) = session.scalars(select(PairingRow))
        (share,) = session.scalars(select(SharedResultRow))
    assert "4417" not in page and "wetsuit" not in page
    assert row.shopper_ref not in page and "Your reference" not in page
    assert "4417" not in str(share.details) and row.shopper_ref not in str(share.details)
    assert 'data-celebrity-id="marco"' in page
    assert '<meta property="og:title" content="' in page
    # Read by a friend: the sharer's words ("My ACME watch"), and an invitation to try.
    assert 'class="button outline"' in page and 'class="share"' not in page
    assert shared.headers["Cache-Control"].startswith("public")
    # A signed owner parameter of another result shows nothing either.
    other = re.search(r"o=([^&\"]+)", response.headers["Location"])
    assert other
    token = share_url.group(1).rsplit("/r/", 1)[1].split("?")[0]
    assert row.shopper_ref not in client.get(f"/c/acme/r/{token}?o=forged").get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/c/acme/r/AAAAAAAAAAAAAAAAAAAAAA", id="unknown-token"),
        pytest.param("/c/acme/r/..%2F..", id="not-a-token"),
        pytest.param("/r/{token}", id="another-campaign"),
    ],
)
def test_a_wrong_token_is_a_branded_404(acme: Flask, path: str) -> None:
    client = acme.test_client()
    response = pair_at(client, "/c/acme/?lang=en", DIVER, lang="en")
    token = response.headers["Location"].split("/r/", 1)[1].split("?")[0]
    missing = client.get(path.format(token=token) + "?lang=zh")
    assert missing.status_code == 404
    page = missing.get_data(as_text=True)
    assert "此页面不存在。" in page and "This page does not exist" not in page
    if path.startswith("/c/acme/"):
        assert "ACME Horlogerie" in page


# -- the call to action -------------------------------------------------------------------


def test_the_call_to_action_goes_only_to_the_stored_link_and_is_counted(acme: Flask) -> None:
    client = acme.test_client()
    response = pair_at(client, "/c/acme/?lang=zh", DIVER, lang="zh")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    link = re.search(r'<a class="button cta" href="([^"]+)"', page)
    assert link and link.group(1).startswith("/c/acme/go/marco?")
    go = client.get(link.group(1).replace("&amp;", "&"))
    assert go.status_code == 302
    assert go.headers["Location"] == "https://acme.example/diver?utm_source=matcher"
    hostile = client.get("/c/acme/go/marco?url=https://evil.example/&next=//evil.example")
    assert hostile.headers["Location"] == "https://acme.example/diver?utm_source=matcher"
    with acme.extensions["matcher.db"].read() as session:
        clicks = session.execute(
            select(
                CampaignEventRow.language, CampaignEventRow.celebrity_id, CampaignEventRow.count
            ).where(CampaignEventRow.kind == "cta_click")
        ).all()
    # The second click came without a language: the browser's (English) is counted.
    assert sorted(clicks) == [("en", "marco", 1), ("zh", "marco", 1)]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/c/acme/go/iris", id="no-link-set"),
        pytest.param("/c/acme/go/nobody", id="unknown-celebrity"),
        pytest.param("/go/marco", id="another-campaigns-celebrity"),
        pytest.param("/c/acme/go/https:%2F%2Fevil.example", id="url-as-celebrity"),
    ],
)
def test_no_link_no_redirect(acme: Flask, path: str) -> None:
    response = acme.test_client().get(path)
    assert response.status_code == 404 and "Location" not in response.headers


# -- the planner's branding page ----------------------------------------------------------


@pytest.fixture
def planner(acme: Flask) -> FlaskClient:
    client = acme.test_client()
    assert login(client).status_code == 303
    return client


def field_problems(page: str) -> dict[str, str]:
    return dict(re.findall(r'<p id="([\w.-]+)-error" class="error">([^<]*)</p>', page))


def test_the_branding_page_saves_words_colours_and_a_portrait(
    acme: Flask, planner: FlaskClient
) -> None:
    form = planner.get("/planner/branding?campaign=acme").get_data(as_text=True)
    assert 'value="Which ACME watch keeps your time?"' in form
    assert 'name="celebrities.marco.cta_url"' in form
    data = {
        "brand_name": "ACME Genève",
        "colours.ink": "#101820",
        "colours.paper": "#ffffff",
        "colours.accent": "#7a1f2b",
        "heading_font": "serif",
        "body_font": "modern",
        "copy.zh.headline": "找到你的 ACME 腕表",
        "copy.en.headline": "Find your ACME watch",
        "copy.en.quick_picks": "Occasions: diving, gala, office",
        "copy.zh.quick_picks": "场合：潜水、晚宴、办公",
        "celebrities.lena.cta_url": "https://acme.example/gold",
        "celebrities.lena.display_name.en": "Lena G.",
        "portrait.lena": (io.BytesIO(png()), "lena.png"),
    }
    response = post(planner, "/planner/branding?campaign=acme", data,
                    content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 303, field_problems(response.get_data(as_text=True))
    shopper = acme.test_client()
    zh = shopper.get("/c/acme/?lang=zh").get_data(as_text=True)
    assert "找到你的 ACME 腕表" in zh and "ACME Genève" in zh
    assert "<legend>场合</legend>" in zh and 'value="晚宴"' in zh
    assert "Occasions" not in zh
    en = shopper.get("/c/acme/?lang=en").get_data(as_text=True)
    assert "<legend>Occasions</legend>" in en
    # The planner's words replaced the earlier ones; those left empty fall back to defaults.
    assert "Three faces" not in en and "Tell us about yourself" in en
    preview = planner.get("/planner/branding/preview?campaign=acme&celebrity=lena&lang=en")
    page = preview.get_data(as_text=True)
    portrait = re.search(r'<img src="(/c/acme/portraits/lena\?v=\w+)" alt="Lena G\."', page)
    assert portrait, "the preview shows the portrait"
    image = shopper.get(portrait.group(1))
    assert image.status_code == 200 and image.mimetype == "image/jpeg"
    assert "immutable" in image.headers["Cache-Control"] and image.headers["ETag"]
    assert Image.open(io.BytesIO(image.data)).format == "JPEG"
    cached = shopper.get(portrait.group(1), headers={"If-None-Match": image.headers["ETag"]})
    assert cached.status_code == 304
    assert shopper.get("/c/acme/portraits/iris").status_code == 404
    assert shopper.get("/portraits/lena").status_code == 404  # another campaign's


def test_the_branding_page_shows_each_problem_next_to_its_field(
    acme: Flask, planner: FlaskClient
) -> None:
    before = planner.get("/c/acme/brand.css").get_data(as_text=True)
    data = {
        "colours.ink": "#bbbbbb",
        "colours.paper": "#ffffff",
        "colours.accent": "#0b3d2e",
        "heading_font": "serif",
        "body_font": "modern",
        "copy.en.quick_picks": "no colon here",
        "celebrities.iris.cta_url": "javascript:alert(document.cookie)",
        "celebrities.lena.display_name.zh": "莲" * 61,
        "portrait.iris": (io.BytesIO(b"<svg/>"), "iris.svg"),
    }
    response = post(planner, "/planner/branding?campaign=acme", data,
                    content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 400
    problems = field_problems(response.get_data(as_text=True))
    assert set(problems) == {
        "colours",
        "copy-en-quick_picks",
        "celebrities-iris-cta_url",
        "celebrities-lena-display_name-zh",
        "portrait-iris",
    }, problems
    assert "https://" in problems["celebrities-iris-cta_url"]
    assert "JPEG, PNG or WebP" in problems["portrait-iris"]
    assert "Line 1" in problems["copy-en-quick_picks"]
    # Nothing was saved: not the colours, not the image.
    assert planner.get("/c/acme/brand.css").get_data(as_text=True) == before
    assert acme.test_client().get("/c/acme/portraits/iris").status_code == 404


def test_the_settings_page_keeps_a_consent_notice_per_language(
    acme: Flask, planner: FlaskClient
) -> None:
    page = planner.get("/planner/settings?campaign=acme").get_data(as_text=True)
    assert "同意 ACME 保存我填写的内容 30 天" in page
    campaign = find_campaign(acme.extensions["matcher.db"], "acme")
    assert campaign is not None
    form = {
        "name": campaign.name,
        "brand": campaign.brand,
        "profiles_dir": campaign.profiles_dir,
        "embed_origins": "",
        "moods": "calm",
        "scents": "woody",
        "consent_text": campaign.consent_text,
        "consent_version": campaign.consent_version,
        "retention_days": "30",
        "time_zone": "Europe/Zurich",
        "store_text": "yes",
        "consent_text_zh": "新的中文同意书。",
        "consent_version_zh": "a1",
    }
    refused = post(planner, "/planner/settings?campaign=acme", form)
    assert refused.status_code == 400
    assert "new version" in field_problems(refused.get_data(as_text=True))["consent_version_zh"]
    saved = post(planner, "/planner/settings?campaign=acme", {**form, "consent_version_zh": "a2"})
    assert saved.status_code == 303, field_problems(saved.get_data(as_text=True))
    zh = acme.test_client().get("/c/acme/?lang=zh").get_data(as_text=True)
    assert "新的中文同意书。" in zh and campaign.consent_text not in zh
    stored = find_campaign(acme.extensions["matcher.db"], "acme")
    assert stored is not None and stored.time_zone == "Europe/Zurich"
    client = acme.test_client()
    pair_at(client, "/c/acme/?lang=zh", DIVER, lang="zh", consent="yes")
    with acme.extensions["matcher.db"].read() as session:
        (row,) = session.scalars(select(PairingRow))
    assert row.consent_version == "zh:a2"


def test_the_default_consent_is_shown_in_one_language_per_page(shop: Flask) -> None:
    client = shop.test_client()
    en = client.get("/?lang=en").get_data(as_text=True)
    zh = client.get("/?lang=zh").get_data(as_text=True)
    assert "Keep what I wrote with my pairing" in en and "保存我填写的内容" not in en
    assert "保存我填写的内容" in zh and "Keep what I wrote" not in zh


def test_a_roster_without_sample_ids_never_shows_the_sample(shop: Flask) -> None:
    # The default campaign here serves the tiny roster: neutral defaults, not Lueur's.
    page = shop.test_client().get("/?lang=en").get_data(as_text=True)
    assert "Maison Aurelle" not in page and "Find your Lueur celebrity" not in page
    assert "Find the Lueur celebrity who matches you" in page


def test_a_shared_result_lasts_as_long_as_the_campaign_keeps_pairings(acme: Flask) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    client = acme.test_client()
    response = pair_at(client, "/c/acme/?lang=en", DIVER, lang="en")
    location = response.headers["Location"]
    assert client.get(location).status_code == 200
    campaign = find_campaign(acme.extensions["matcher.db"], "acme")
    assert campaign is not None
    old = datetime.now(UTC) - timedelta(days=campaign.retention_days + 1)
    with acme.extensions["matcher.db"].write() as session:
        session.execute(update(SharedResultRow).values(created_at=old))
    assert acme.test_client().get(location.split("?")[0]).status_code == 404


def test_the_purge_deletes_shared_results_past_retention(acme: Flask) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select, update

    from matcher.store.privacy import purge_expired

    db = acme.extensions["matcher.db"]
    client = acme.test_client()
    pair_at(client, "/c/acme/?lang=en", DIVER, lang="en")
    pair_at(client, "/c/acme/?lang=en", DIVER, lang="en")
    campaign = find_campaign(db, "acme")
    assert campaign is not None
    old = datetime.now(UTC) - timedelta(days=campaign.retention_days + 1)
    with db.write() as session:
        first = session.scalars(select(SharedResultRow.token).limit(1)).one()
        session.execute(
            update(SharedResultRow).where(SharedResultRow.token == first).values(created_at=old)
        )
    purge_expired(db, dry_run=True)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(SharedResultRow)) == 2
    purge_expired(db)
    with db.read() as session:
        tokens = set(session.scalars(select(SharedResultRow.token)))
    assert len(tokens) == 1 and first not in tokens
