"""The status monitor in a real Chromium (issue 11's must-shows, in-process server): a terminal
whose sync fails turns red with the error text and one that goes offline changes its row, live,
within 2 s; an old-version terminal is yellow until its upgrade finishes; the filters narrow the
list and live in the URL; the Excel download opens in openpyxl with the rows and the fills; the
retrieve-logs dialog's archive link appears without a reload. One browser and one console for
the module; each test its own context. The rig's side (a real terminal's logs and database):
hil_tests/test_console_monitor.py."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import openpyxl
import pytest
from browser import ServedApp, launch_chromium, new_page
from monitor_console import MonitorConsole, ago
from test_console_browser import log_in

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
LIVE = 2.0  # seconds: the bound for a row to change without a reload


@pytest.fixture(scope="module")
def chromium():
    yield from launch_chromium()


@pytest.fixture
def page(chromium, console, tmp_path):
    yield from new_page(chromium, tmp_path, width=1400)


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    made = MonitorConsole(tmp_path_factory.mktemp("monitor-browser"))
    for serial, location in (("W-1", "L1"), ("W-OLD", "L1"), ("W-2", "L1"), ("W-L2", "L2")):
        made.terminal(serial, location)
    made.status("W-1", last_update=ago(hours=1), last_sync=ago(seconds=3))
    made.status("W-OLD", version=20230601, last_update=ago(days=20), last_sync=ago(seconds=3))
    made.status("W-2", last_update=ago(days=9), last_sync=ago(seconds=3),
                last_sync_error="link lost with 4 event(s) not acknowledged by the server")
    made.status("W-L2", last_update=ago(hours=1), last_sync_error="secret of L2")
    served = ServedApp(made.app, tmp_path_factory.mktemp("monitor-browser-certs"))
    made.url = served.url
    yield made
    served.stop()


def row(page, serial: str):
    return page.locator(f'tr[data-serial="{serial}"]')


def changes_within(page, selector: str, started: float) -> float:
    """Seconds from `started` until `selector` matches (fails after 10 s, saying how long)."""
    page.wait_for_selector(selector, timeout=10_000)
    return time.monotonic() - started


def test_a_failing_sync_turns_the_row_red_and_going_offline_shows_live(page, console):
    log_in(page, console, "olga")
    page.goto(console.url + "/terminals?q=W-1")
    assert row(page, "W-1").get_attribute("class") == ""
    started = time.monotonic()
    console.status("W-1", last_update=ago(hours=1),
                   last_sync_error="server did not acknowledge 2 event(s) for 30 s")
    took = changes_within(page, 'tr.red[data-serial="W-1"]', started)
    assert took < LIVE, f"the row turned red after {took:.1f} s"
    assert "server did not acknowledge 2 event(s) for 30 s" in row(page, "W-1").inner_text()
    started = time.monotonic()
    console.status("W-1", online=False)
    took = changes_within(page, 'tr[data-serial="W-1"] td.offline', started)
    assert took < LIVE, f"the row said offline after {took:.1f} s"
    assert "secret of L2" not in page.content(), "another location's rows never arrive"


def test_an_old_version_is_yellow_until_its_upgrade_finishes(page, console):
    log_in(page, console, "olga")
    page.goto(console.url + "/terminals?q=W-OLD")
    assert "yellow" in row(page, "W-OLD").get_attribute("class")
    assert "(update needed)" in row(page, "W-OLD").inner_text()
    started = time.monotonic()
    console.status("W-OLD", version=20230801, last_update=ago(seconds=1))  # restarted into it
    took = changes_within(page, 'tr[data-serial="W-OLD"]:not(.yellow)', started)
    assert took < LIVE, f"the row stayed yellow {took:.1f} s"
    assert "20230801" in row(page, "W-OLD").inner_text()


def test_the_filters_narrow_the_list_and_a_filtered_view_is_a_url(page, console):
    for serial, location, updated, error in (
            ("F-RECENT", "L1", ago(hours=2), None), ("F-FAILED", "L1", ago(days=3), "refused"),
            ("F-STALE", "L1", ago(days=20), None), ("F-ELSEWHERE", "L2", ago(hours=1), None)):
        console.terminal(serial, location)
        console.status(serial, last_update=updated, last_sync=ago(seconds=9),
                       last_sync_error=error)
    log_in(page, console, "ada")

    def shown() -> set[str]:
        rows = page.locator("tr[data-serial]")
        return {rows.nth(i).get_attribute("data-serial") for i in range(rows.count())}

    page.get_by_label("Search serial or location").fill("F-")
    page.get_by_label("Location", exact=True).select_option("L1")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*location=L1.*"))
    assert shown() == {"F-RECENT", "F-FAILED", "F-STALE"}
    page.get_by_label("Most recent update within").fill("10")
    page.get_by_label("Unit").select_option("d")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*within=10&within_unit=d.*"))
    assert shown() == {"F-RECENT", "F-FAILED"}
    page.get_by_label("Unit").select_option("h")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*within_unit=h.*"))
    assert shown() == {"F-RECENT"}
    page.get_by_label("Unit").select_option("d")
    page.get_by_label("Do not show successfully synced terminals").check()
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*hide_synced=true.*"))
    assert shown() == {"F-FAILED"}
    bookmark = page.url
    page.goto("about:blank")
    page.goto(bookmark)  # the shared link shows the same view, its filters filled in
    assert shown() == {"F-FAILED"}
    assert page.get_by_label("Do not show successfully synced terminals").is_checked()
    assert page.get_by_label("Most recent update within").input_value() == "10"
    assert page.get_by_label("Location", exact=True).input_value() == "L1"


def test_the_excel_download_has_the_filtered_rows_and_the_fills(page, console):
    log_in(page, console, "olga")
    page.goto(console.url + "/terminals?q=W-&sort=serial&order=desc")
    with page.expect_download() as download:
        page.get_by_role("link", name="Excel").click()
    assert download.value.suggested_filename == "terminals.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    rows = list(sheet.iter_rows(min_row=2))
    assert [r[0].value for r in rows] == ["W-OLD", "W-2", "W-1"], "filtered, sorted as shown"
    by_serial = {r[0].value: r for r in rows}
    assert by_serial["W-2"][0].fill.fgColor.rgb.endswith("FBE9E7")
    assert "link lost" in by_serial["W-2"][8].value
    assert by_serial["W-2"][6].is_date


def test_retrieve_logs_in_the_dialog_then_the_link_appears_without_a_reload(page, console):
    log_in(page, console, "olga")
    page.goto(console.url + "/terminals?q=W-2")
    sent = len(console.link.sent)
    target = row(page, "W-2")
    target.get_by_text("Actions").click()
    target.get_by_text("Retrieve logs").click()
    target.get_by_label("Maximum size (KB)").fill("32")
    target.get_by_role("button", name="Request logs").click()
    page.get_by_text("W-2: logs requested").wait_for()
    serial, command = console.link.sent[sent]
    assert serial == "W-2" and command["args"]["max_size"] == 32 * 1024
    page.locator("#commands").get_by_text("waiting for the terminal").wait_for()
    console.result("W-2", command["id"], lines=7, dropped=0, size=120, truncated=False)
    archive = console.upload("W-2", command["id"], b"\x1f\x8b the logs")
    link = page.get_by_role("link", name=re.compile("Download log archive"))
    link.wait_for(timeout=int(LIVE * 1000) + 1000)
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == b"\x1f\x8b the logs"
    assert download.value.suggested_filename == archive["filename"]
