"""A campaign's logo and portraits: decoded with Pillow, checked, re-encoded, kept in the database.

Re-encoding keeps nothing but pixels (no metadata, no trailing bytes, no
polyglot file), and the database holds the bytes so every server answers
with the same image.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from sqlalchemy import delete, select

from ..errors import InputError
from .database import Database
from .schema import BrandImageRow

#: Largest image upload accepted, before decoding.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
#: Pixels a decoded upload may have: a small file that decodes to gigabytes is refused.
MAX_IMAGE_PIXELS = 40_000_000
MIN_PORTRAIT_SIDE = 160
MIN_LOGO_SIDE = 16
#: Stored sizes: a portrait's longer side and a logo's, enough for a 3x phone screen.
PORTRAIT_SIDE = 720
LOGO_SIDE = 800
IMAGE_FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}
LOGO_KEY = "logo"


@dataclass(frozen=True)
class BrandImage:
    """A stored logo or portrait."""

    key: str
    content_type: str
    data: bytes
    digest: str
    width: int
    height: int


def portrait_key(celebrity_id: str) -> str:
    return f"portrait:{celebrity_id}"


def prepare_image(data: bytes, *, logo: bool = False) -> BrandImage:
    """Decode an upload, check it and re-encode it: JPEG for a portrait, PNG for a logo.

    Raises:
        InputError: empty, too large, not a JPEG, PNG or WebP image, broken,
            too many pixels, or too small to look sharp.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    what = "the logo" if logo else "the portrait"
    if not data:
        raise InputError(f"{what}: the file is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise InputError(
            f"{what}: the file is {len(data) / 1e6:.1f} MB; send at most "
            f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InputError(
                    f"{what}: {image.width}x{image.height} pixels is more than we take; "
                    "send a smaller image"
                )
            image.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{what}: it has more pixels than we take; send a smaller image") from None
    except UnidentifiedImageError:
        raise InputError(f"{what}: not a JPEG, PNG or WebP image we can read") from None
    except (OSError, SyntaxError, ValueError):
        raise InputError(f"{what}: the image is damaged and cannot be read") from None
    image = ImageOps.exif_transpose(image)
    smallest = MIN_LOGO_SIDE if logo else MIN_PORTRAIT_SIDE
    if min(image.size) < smallest:
        raise InputError(
            f"{what}: {image.width}x{image.height} pixels is too small; "
            f"send at least {smallest} pixels on each side"
        )
    out = io.BytesIO()
    if logo:
        image = image.convert("RGBA")
        image.thumbnail((LOGO_SIDE, LOGO_SIDE))
        image.save(out, "PNG", optimize=True)
        content_type = "image/png"
    else:
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        image = image.convert("RGB")
        image.thumbnail((PORTRAIT_SIDE, PORTRAIT_SIDE))
        image.save(out, "JPEG", quality=86, optimize=True, progressive=True)
        content_type = "image/jpeg"
    encoded = out.getvalue()
    key = LOGO_KEY if logo else ""
    return BrandImage(
        key=key,
        content_type=content_type,
        data=encoded,
        digest=hashlib.sha256(encoded).hexdigest()[:16],
        width=image.width,
        height=image.height,
    )


def save_image(db: Database, campaign_id: int, key: str, image: BrandImage) -> BrandImage:
    """Store a prepared image under ``key`` (``logo`` or :func:`portrait_key`), replacing any."""
    with db.write() as session:
        row = session.get(BrandImageRow, (campaign_id, key))
        if row is None:
            row = BrandImageRow(campaign_id=campaign_id, key=key)
            session.add(row)
        row.content_type = image.content_type
        row.data = image.data
        row.digest = image.digest
        row.width = image.width
        row.height = image.height
    return BrandImage(key, image.content_type, image.data, image.digest, image.width, image.height)


def find_image(db: Database, campaign_id: int, key: str) -> BrandImage | None:
    with db.read() as session:
        row = session.get(BrandImageRow, (campaign_id, key))
        if row is None:
            return None
        return BrandImage(row.key, row.content_type, row.data, row.digest, row.width, row.height)


def image_versions(db: Database, campaign_id: int) -> dict[str, str]:
    """Each stored image's key and digest (for URLs), without reading the bytes."""
    with db.read() as session:
        rows = session.execute(
            select(BrandImageRow.key, BrandImageRow.digest).where(
                BrandImageRow.campaign_id == campaign_id
            )
        ).all()
        return {key: digest for key, digest in rows}


def delete_image(db: Database, campaign_id: int, key: str) -> None:
    with db.write() as session:
        session.execute(
            delete(BrandImageRow).where(
                BrandImageRow.campaign_id == campaign_id, BrandImageRow.key == key
            )
        )
