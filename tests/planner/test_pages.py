"""The embed snippet, and every planner page at once."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from .conftest import (
    SHOPPER_TEXTS,
    check_page,
    job_id_of,
    login,
    pair,
    post,
    shopper_csv,
    upload,
    wait_for,
)

# -- embed snippet ----------------------------------------------------------------------


def test_snippet_embeds_this_host_and_checks_the_origin(app: Flask) -> None:
    client = app.test_client()
    host = "https://matcher.lueur.example"
    login(client, base_url=host)
    page = client.get("/planner/embed", base_url=host).get_data(as_text=True)
    assert escape(f'<iframe id="lueur-matcher" src="{host}/embed"') in page
    assert escape(f'var MATCHER_ORIGIN = "{host}";') in page
    assert escape("if (event.origin !== MATCHER_ORIGIN") in page
    assert "matcher:height" in page and "matcher:paired" in page
    assert "No site may embed the matcher yet" in page
    assert check_page(page).inline_scripts == 0, "the snippet is shown, not run"


# -- every page -------------------------------------------------------------------------


def test_planner_pages_keep_the_csp_and_label_every_control(
    app: Flask, client: FlaskClient
) -> None:
    pages = {"login": client.get("/planner/login").get_data(as_text=True)}
    login(client)
    job_id = job_id_of(upload(client, "a.csv", shopper_csv([("1", SHOPPER_TEXTS[0]), ("2", "")])))
    wait_for(app, job_id)
    pair(client, SHOPPER_TEXTS[0], ref="one")
    for path in ("/planner/", "/planner/try", "/planner/batches", f"/planner/batches/{job_id}",
                 "/planner/dashboard", "/planner/settings", "/planner/embed",
                 "/planner/campaigns", "/planner/privacy"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        pages[path] = response.get_data(as_text=True)
    pages["ranking"] = post(client, "/planner/try", {"text": SHOPPER_TEXTS[1]}).get_data(
        as_text=True
    )
    pages["confirm-delete"] = post(
        client, "/planner/privacy", {"action": "delete", "ref": "one"}
    ).get_data(as_text=True)
    pages["purge"] = post(client, "/planner/privacy", {"action": "dry-run"}).get_data(as_text=True)
    pages["bad-campaign"] = post(client, "/planner/campaigns", {"name": ""}).get_data(as_text=True)
    for name, page in pages.items():
        check = check_page(page)
        assert check.inline_scripts == 0, name
        assert check.style_attributes == [] and check.style_elements == 0, name
        assert set(check.controls) <= check.labelled, (name, check.controls, check.labelled)
        assert "lang=None" not in page, name
    dashboard = check_page(pages["/planner/dashboard"])
    # The funnel, the funnel by day, pairings per celebrity, pairings per day, top-1 scores.
    assert len(dashboard.svgs) == 5
    assert all(svg.get("role") == "img" and svg.get("aria-labelledby") for svg in dashboard.svgs)


def test_the_planner_header_names_the_selected_campaign_not_the_sample(
    planner: FlaskClient,
) -> None:
    page = planner.get("/planner/").get_data(as_text=True)
    assert '<p class="brand">Lueur · Lueur launch · Planner</p>' in page
    assert "Maison Aurelle" not in page.split("</header>")[0]
