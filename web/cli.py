"""``matcher serve``: registered with the core CLI through the ``matcher.commands`` entry point."""

from __future__ import annotations

from pathlib import Path

import click

from matcher.cli import roster_options


@click.command("serve")
@roster_options
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; 127.0.0.1 keeps it private to this machine.",
)
@click.option(
    "--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="Port."
)
def serve(profiles_dir: Path, model: str, index_dir: Path | None, host: str, port: int) -> None:
    """Serve the shopper form on the roster in PROFILES.

    \b
    Example:
      matcher serve --profiles profiles --port 8000
    """
    from . import create_app

    app = create_app(
        {
            "MATCHER_PROFILES": str(profiles_dir),
            "MATCHER_MODEL": model,
            "MATCHER_INDEX_DIR": str(index_dir) if index_dir else None,
        }
    )
    click.echo(f"Serving the shopper form on http://{host}:{port}/ (Ctrl+C to stop)", err=True)
    app.run(host=host, port=port, debug=False, load_dotenv=False)
