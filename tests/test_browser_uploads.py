"""Planner uploads in a real browser: an Excel workbook and a GBK CSV from Chinese Excel,
both with columns named otherwise, chosen on the page before matching starts; a large
file followed with its rate and time left, and cancelled.

The real app (the default model, real FAISS, SQLite) is served by werkzeug on
a free port and Debian's chromium is driven through Playwright, as in
``tests/test_browser.py``. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import Workbook
from playwright.sync_api import Browser, Page, expect

from matcher.matching import Matcher

from .conftest import PLANNER_PASSWORD, make_app
from .test_browser import ARTIFACTS, WAIT_MS, browser, serve  # noqa: F401 - the fixture

#: Matching 20 shoppers with the real model, once the page says the job runs.
JOB_MS = 120_000

SHOPPERS = [
    ("VIP-001", "周末喜欢一个人去茶馆坐一下午，看看书，写点随笔"),
    ("VIP-002", "Weekends I'm off trekking between mountain huts, phone off."),
    ("VIP-003", "演唱会、卡拉OK，和朋友在霓虹灯下跳舞到深夜"),
    ("VIP-004", "I collect vintage silk scarves and love a quiet gallery morning."),
]


@pytest.fixture(scope="module")
def site(sample_matcher: Matcher, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = make_app(tmp_path_factory.mktemp("uploads"), sample_matcher)
    try:
        with serve(app) as origin:
            yield origin
    finally:
        app.extensions["matcher.db"].dispose()


@pytest.fixture
def planner(browser: Browser, site: str) -> Iterator[Page]:  # noqa: F811 - the fixture
    context = browser.new_context(
        locale="zh-CN", viewport={"width": 1100, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(f"{site}/planner/login")
    page.fill("#user", "planner")
    page.fill("#password", PLANNER_PASSWORD)
    page.click("button[type=submit]")
    expect(page).not_to_have_url(f"{site}/planner/login")
    try:
        yield page
    finally:
        context.close()


def workbook(path: Path) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "会员"
    sheet.append(["会员编号", "城市", "喜好"])
    for number, (_ref, text) in enumerate(SHOPPERS):
        sheet.append([1001 + number, "上海", text])
    book.save(path)
    return path


def gbk_csv(path: Path) -> Path:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["客户编号", "留言", "渠道"])
    writer.writerows((ref, text, "门店") for ref, text in SHOPPERS)
    path.write_bytes(out.getvalue().encode("gbk", errors="replace"))
    return path


def upload_and_map(page: Page, site: str, file: Path, lang: str) -> None:
    page.goto(f"{site}/planner/batches?lang={lang}")
    page.set_input_files("#file", str(file))
    page.click("form.planner-form button[type=submit]")
    expect(page.locator("#mapping")).to_be_visible()


def download_rows(page: Page) -> list[dict[str, str]]:
    with page.expect_download() as caught:
        page.click("a.button[download]")
    body = Path(caught.value.path()).read_bytes()
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def test_an_excel_workbook_with_other_column_names(
    planner: Page, site: str, tmp_path: Path
) -> None:
    upload_and_map(planner, site, workbook(tmp_path / "会员名单.xlsx"), "en")
    expect(planner.locator("#file-read")).to_have_text("Read as an Excel workbook (first sheet).")
    # The names are guessed; the planner checks them before anything runs.
    expect(planner.locator("#id_column")).to_have_value("会员编号")
    expect(planner.locator("#text_column")).to_have_value("喜好")
    planner.screenshot(path=str(ARTIFACTS / "upload-xlsx-mapping.png"), full_page=True)
    planner.click("#mapping button[type=submit]")
    expect(planner.locator("p.status")).to_have_text("done, ready to download", timeout=JOB_MS)
    expect(planner.locator("dl.figures dd").first).to_have_text(str(len(SHOPPERS)))
    planner.screenshot(path=str(ARTIFACTS / "upload-xlsx-done.png"), full_page=True)
    rows = download_rows(planner)
    assert [row["id"] for row in rows] == [str(1001 + n) for n in range(len(SHOPPERS))]
    assert rows[1]["celebrity_1"] == "zhao-feng"  # the trekker
    again = download_rows(planner)
    assert again == rows, "downloadable again"


def test_a_gbk_csv_from_chinese_excel_mapped_in_chinese(
    planner: Page, site: str, tmp_path: Path
) -> None:
    upload_and_map(planner, site, gbk_csv(tmp_path / "客户.csv"), "zh")
    expect(planner.locator("#file-read")).to_have_text("已按 GB18030 (GBK) 编码的 CSV 读取。")
    expect(planner.locator("#id_column")).to_have_value("客户编号")
    expect(planner.locator("#text_column")).to_have_value("留言")
    # A wrong choice first: the same column twice is refused next to the field.
    planner.select_option("#text_column", "客户编号")
    planner.click("#mapping button[type=submit]")
    expect(planner.locator("#text_column-error")).to_have_text("文本列不能与编号列相同。")
    planner.select_option("#text_column", "留言")
    planner.screenshot(path=str(ARTIFACTS / "upload-gbk-mapping-zh.png"), full_page=True)
    planner.click("#mapping button[type=submit]")
    expect(planner.locator("p.status")).to_have_text("已完成，可下载", timeout=JOB_MS)
    planner.screenshot(path=str(ARTIFACTS / "upload-gbk-done-zh.png"), full_page=True)
    rows = download_rows(planner)
    assert [row["id"] for row in rows] == [ref for ref, _ in SHOPPERS]
    assert rows[0]["celebrity_1"] == "chen-an"  # the tea house and essays


def test_a_large_upload_shows_its_time_left_and_is_cancelled(
    planner: Page, site: str, tmp_path: Path
) -> None:
    source = tmp_path / "crm-export.csv"
    # Every text its own (a repeated text is embedded once), so the job runs long enough to watch.
    lines = ["ID,Text"] + [
        f"crm-{n},{SHOPPERS[n % 4][1].replace(',', ' ')} (member since {2000 + n % 25}, visit {n})"
        for n in range(3000)
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    planner.goto(f"{site}/planner/batches?lang=en")
    planner.set_input_files("#file", str(source))
    planner.click("form.planner-form button[type=submit]")
    expect(planner.locator("#time-left")).to_be_visible(timeout=JOB_MS)
    expect(planner.locator("#progress-text")).to_contain_text("of 3000 shoppers")
    planner.screenshot(path=str(ARTIFACTS / "upload-progress.png"), full_page=True)
    planner.click("#cancel button")
    expect(planner.locator("p.status")).to_have_text("cancelled", timeout=JOB_MS)
    expect(planner.locator("p.notice")).to_have_text(
        "This batch was cancelled; nothing of it was stored."
    )
    expect(planner.locator("a.button[download]")).to_have_count(0)
    planner.screenshot(path=str(ARTIFACTS / "upload-cancelled.png"), full_page=True)
