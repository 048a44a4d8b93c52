"""Web origins (``scheme://host[:port]``) as browsers send them in ``Origin`` headers."""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import ConfigError


def parse_origins(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Turn ``"https://a.example, https://b.example"`` into a checked list of origins.

    Raises:
        ConfigError: an entry is not ``scheme://host[:port]``.
    """
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    origins = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(
                f"embed origin {item!r} must look like https://shop.example or http://host:port"
            )
        host = parts.netloc.lower()
        default_port = {"http": ":80", "https": ":443"}[parts.scheme]
        # Browsers omit the default port from the Origin header; so must we.
        host = host.removesuffix(default_port)
        origins.append(f"{parts.scheme}://{host}")
    return origins
