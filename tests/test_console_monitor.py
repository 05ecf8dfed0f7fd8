"""The status monitor (issue 11), in-process: the list's status columns and colours (red on a
failed sync, yellow by the policy and the catalog), the seed's filters in the API and the page's
URL, the Excel and CSV exports, the remote tools (retrieve logs with a period and a size, reset
local database, reboot, the selected rows) and their results, archive retention, the firmware
page — and a user of another location seeing none of it. In a real Chromium:
test_console_monitor_browser.py; on the simulated rig: hil_tests/test_console_monitor.py."""

from __future__ import annotations

import html
import io
import json
import re

import openpyxl
import pytest
from conftest import DIALECTS
from monitor_console import MonitorConsole, ago
from test_console_api import assert_error
from test_console_pages import csrf, log_in
from test_server_cli import assert_refused, cli

from firmware_updater.testing import assemble, hostile_tar, make_bundle, make_key, make_tree

HX = {"HX-Request": "true"}


@pytest.fixture(scope="module", params=DIALECTS)
def console(request, tmp_path_factory):
    # The monitor's query (colours, filters, sorting) is the fleet's SQL: on both engines.
    url = request.getfixturevalue("postgres_cluster").fresh() \
        if request.param == "postgresql" else None
    made = MonitorConsole(tmp_path_factory.mktemp("console-monitor"), url)
    made.terminal("M-RED", "L1")
    made.status("M-RED", last_sync_error="server did not acknowledge 3 event(s) for 30 s",
                last_update=ago(days=3), last_sync=ago(hours=5))
    made.terminal("M-OLD", "L1")
    made.status("M-OLD", version=20230601, last_update=ago(minutes=10), last_sync=ago(minutes=1))
    made.terminal("M-OK", "L1")
    made.status("M-OK", last_update=ago(hours=3), last_sync=ago(seconds=5),
                vpn_handshake_age=12.4)
    made.terminal("M-NEW", "L1", paired=False)
    made.terminal("M-L2", "L2")
    made.status("M-L2", last_sync_error="link lost", last_update=ago(minutes=5))
    return made


@pytest.fixture(scope="module")
def olga(console):
    return log_in(console, "olga")


@pytest.fixture(scope="module")
def otto(console):
    return log_in(console, "otto")


def listed(console, user="olga", **params) -> dict[str, dict]:
    answer = console.call(user, "GET", "/terminals", params={"q": "M-", **params})
    assert answer.status_code == 200, answer.text
    return {t["serial"]: t for t in answer.json()["terminals"]}


def test_the_list_carries_the_status_columns_and_the_seeds_colours(console):
    rows = listed(console)
    assert set(rows) == {"M-RED", "M-OLD", "M-OK", "M-NEW"}
    red = rows["M-RED"]
    assert red["highlight"] == "red" and "did not acknowledge" in red["last_sync_error"]
    assert rows["M-OLD"]["highlight"] == "yellow", "below the policy's minimum 20230801"
    ok = rows["M-OK"]
    assert ok["highlight"] is None and ok["online"] and ok["version"] == 20240101
    assert ok["last_update"] and ok["last_sync"] and ok["vpn_handshake_age"] == 12.4
    assert rows["M-NEW"] == {**rows["M-NEW"], "online": False, "highlight": None,
                             "last_sync": None}
    by_colour = console.call("olga", "GET", "/terminals",
                             params={"sort": "highlight", "q": "M-"}).json()["terminals"]
    assert [t["highlight"] for t in by_colour if t["highlight"]] == ["red", "yellow"]


def test_yellow_follows_the_catalog_as_well_as_the_policy(tmp_path):
    made = MonitorConsole(tmp_path)
    made.terminal("C-CUR", "L1")
    made.status("C-CUR", version=20240101)
    made.terminal("C-TOP", "L1")
    made.status("C-TOP", version=20240601)
    assert {s: t["highlight"] for s, t in listed(made, q="C-").items()} == {
        "C-CUR": None, "C-TOP": None}
    made.add_bundle(20240601, "20230801-20240531")  # an update the current one can take
    assert {s: t["highlight"] for s, t in listed(made, q="C-").items()} == {
        "C-CUR": "yellow", "C-TOP": None}
    assert made.master.monitoring.status("C-CUR")["highlight"] == "yellow", \
        "`terminal status` judges alike"
    assert list(listed(made, q="C-", highlight="yellow")) == ["C-CUR"]


def test_each_filter_narrows_the_list_as_the_seed_describes(console):
    assert set(listed(console, location="L1")) == {"M-RED", "M-OLD", "M-OK", "M-NEW"}
    assert set(listed(console, updated_within="30m")) == {"M-OLD"}
    assert set(listed(console, updated_within="6h")) == {"M-OLD", "M-OK"}
    assert set(listed(console, updated_within="4d")) == {"M-OLD", "M-OK", "M-RED"}
    assert set(listed(console, hide_synced="true")) == {"M-RED"}, "errors only"
    assert set(listed(console, state="never_paired")) == {"M-NEW"}
    assert set(listed(console, highlight="red")) == {"M-RED"}
    assert set(listed(console, q="M-O")) == {"M-OLD", "M-OK"}
    assert set(listed(console, q="M-O", updated_within="1h")) == {"M-OLD"}
    everyone = listed(console, "ada", hide_synced="true")
    assert set(everyone) == {"M-RED", "M-L2"}


@pytest.mark.parametrize(("params", "mentions"), [
    ({"updated_within": "5x"}, "30m, 6h or 2d"),
    ({"updated_within": "0h"}, "more than 0"),
    ({"hide_synced": "maybe"}, "true or false"),
    ({"state": "broken"}, "never_paired"),
    ({"highlight": "blue"}, "red or yellow"),
    ({"sort": "secret"}, "last_sync_error"),
])
def test_bad_filters_are_refused_with_a_sentence(console, params, mentions):
    assert_error(console.call("olga", "GET", "/terminals", params=params), 400, "bad_request",
                 mentions)


def test_terminal_list_json_carries_the_monitors_fields_and_filters(console):
    """`batm-server terminal list --json` (here on the database: no server runs)."""
    data = console.root / "data"
    db = console.database_args()
    listing = json.loads(cli(data, *db, "terminal", "list", "--json").stdout)
    red = next(t for t in listing if t["serial"] == "M-RED")
    assert red["highlight"] == "red" and red["last_update"] and red["last_sync"]
    assert "did not acknowledge" in red["last_sync_error"] and red["scenario"] == "B"
    assert "paired_at" in red and "vpn_handshake_age" in red
    synced = json.loads(cli(data, *db, "terminal", "list", "--json", "--hide-synced").stdout)
    assert {t["serial"] for t in synced} == {"M-RED", "M-L2"}
    narrowed = cli(data, *db, "terminal", "list", "--json", "--location", "L1",
                   "--updated-within", "1h")
    assert [t["serial"] for t in json.loads(narrowed.stdout)] == ["M-OLD"]
    assert [t["serial"] for t in json.loads(cli(
        data, *db, "terminal", "list", "--json", "--highlight", "yellow").stdout)] == ["M-OLD"]
    assert_refused(cli(data, *db, "terminal", "list", "--updated-within", "soon"), 1,
                   "30m, 6h or 2d")


def test_the_filters_live_in_the_pages_url(console, olga):
    page = olga.get("/terminals", params={"within": "2", "within_unit": "h", "q": "M-"})
    assert page.status_code == 200
    assert "M-OLD" in page.text and "M-RED" not in page.text and "M-OK" not in page.text
    # The live refresh and the exports keep the view's filters.
    assert 'hx-get="/terminals/rows?q=M-&amp;updated_within=2h' in page.text
    assert 'href="/terminals.xlsx?q=M-&amp;updated_within=2h' in page.text
    assert 'value="2"' in page.text and '<option value="h" selected>hours' in page.text
    synced = olga.get("/terminals?hide_synced=true&q=M-")
    assert re.search(r'id="hide_synced"[^>]*checked', synced.text)
    assert '<tr class="red" data-serial="M-RED">' in synced.text
    assert "M-OK" not in synced.text and "did not acknowledge 3 event(s)" in synced.text
    yellow = olga.get("/terminals?q=M-OLD").text
    assert '<tr class="yellow" data-serial="M-OLD">' in yellow and "(update needed)" in yellow


def test_the_live_refresh_costs_a_204_while_nothing_changed(console, olga):
    rows = olga.get("/terminals/rows", params={"q": "M-OK"}, headers=HX).text
    poll = html.unescape(re.search(r'hx-get="(/terminals/rows\?[^"]+)"', rows).group(1))
    assert "digest=" in poll
    assert olga.get(poll, headers=HX).status_code == 204, "the same rows: htmx keeps the table"
    console.status("M-OK", last_update=ago(hours=3), last_sync=ago(seconds=1),
                   vpn_handshake_age=3.0)
    changed = olga.get(poll, headers=HX)
    assert changed.status_code == 200 and "3 s ago" in changed.text


def test_the_excel_export_has_the_filtered_rows_values_dates_and_fills(console, olga):
    answer = olga.get("/terminals.xlsx", params={"q": "M-", "location": "L1",
                                                 "sort": "serial", "order": "desc"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = openpyxl.load_workbook(io.BytesIO(answer.content)).active
    header, *rows = list(sheet.iter_rows())
    names = [c.value for c in header]
    assert names[:3] == ["Serial", "Location", "Scenario"] and "Last sync error" in names
    assert [r[0].value for r in rows] == ["M-RED", "M-OLD", "M-OK", "M-NEW"]
    by_serial = {r[0].value: r for r in rows}
    red = by_serial["M-RED"]
    col = {name: i for i, name in enumerate(names)}
    assert "did not acknowledge" in red[col["Last sync error"]].value
    assert red[col["Last update"]].is_date, "a real date cell, not text"
    assert red[0].fill.fgColor.rgb.endswith("FBE9E7")
    assert by_serial["M-OLD"][0].fill.fgColor.rgb.endswith("FFF6DC")
    assert by_serial["M-OLD"][col["Software version"]].value == 20230601
    assert by_serial["M-OK"][0].fill.fill_type in (None, "none")
    assert by_serial["M-NEW"][col["Last sync"]].value is None
    api = console.call("olga", "GET", "/terminals.xlsx", params={"hide_synced": "true"})
    rows = list(openpyxl.load_workbook(io.BytesIO(api.content)).active.iter_rows(
        min_row=2, values_only=True))
    assert [r[0] for r in rows] == ["M-RED"]


def test_the_csv_export_has_the_monitors_columns(console, olga):
    lines = olga.get("/terminals.csv", params={"q": "M-R"}).text.splitlines()
    assert lines[0].split(",")[6:9] == ["last_update", "last_sync", "last_sync_error"]
    assert lines[1].startswith("M-RED,L1,B,paired,True,20240101,") and lines[1].endswith(",red")


def test_retrieve_logs_from_the_dialog_then_the_link_appears(console, olga):
    page = olga.get("/terminals?q=M-OK").text
    assert 'action="/terminals/M-OK/logs"' in page and "Maximum size (KB)" in page
    sent = len(console.link.sent)
    answer = olga.post("/terminals/M-OK/logs", headers=HX, data={
        "csrf_token": csrf(page), "since": "2026-01-01T10:00", "until": "2026-01-01T12:30",
        "max_kb": "64"})
    assert answer.status_code == 200 and "logs requested" in answer.text
    serial, command = console.link.sent[sent]
    assert serial == "M-OK" and command["command"] == "retrieve_logs"
    assert command["args"] == {"since": "2026-01-01T10:00:00Z", "until": "2026-01-01T12:30:00Z",
                               "max_size": 65536}
    panel = olga.get("/monitor/commands").text
    assert "retrieve logs" in panel and "waiting for the terminal" in panel
    console.result("M-OK", command["id"], lines=42, dropped=0, size=300, truncated=False)
    archive = console.upload("M-OK", command["id"], b"\x1f\x8b fake tar.gz")
    panel = olga.get("/monitor/commands").text
    assert f'href="/archives/{archive["id"]}"' in panel and "42 line(s)" in panel
    download = olga.get(f"/archives/{archive['id']}")
    assert download.status_code == 200 and download.content == b"\x1f\x8b fake tar.gz"
    audit = console.call("ada", "GET", "/audit", params={"action": "retrieve_logs"}).json()
    assert audit["entries"][0]["detail"].startswith("2026-01-01T10:00:00Z .. ")


@pytest.mark.parametrize(("fields", "mentions"), [
    ({"since": "2026-01-01T12:00", "until": "2026-01-01T10:00"}, "since must be before until"),
    ({"since": "yesterday", "until": "2026-01-01T10:00"}, "is not an ISO 8601 time"),
    ({"since": "2026-01-01T10:00", "until": "2026-01-01T12:00", "max_kb": "0"}, "number of KB"),
])
def test_a_bad_period_or_size_is_refused_before_anything_is_sent(console, olga, fields,
                                                                 mentions):
    sent = len(console.link.sent)
    page = olga.get("/terminals?q=M-OK").text
    answer = olga.post("/terminals/M-OK/logs", headers=HX,
                       data={"csrf_token": csrf(page), "max_kb": "64", **fields})
    assert answer.status_code == 400 and mentions in answer.text
    assert len(console.link.sent) == sent


def test_reset_db_needs_a_confirmation_naming_the_terminal_and_shows_the_result(console, olga):
    page = olga.get("/terminals?q=M-OK").text
    assert "Reset the local database of M-OK" in page and "events it has not sent yet" in page
    unconfirmed = olga.post("/terminals/M-OK/reset-db", headers=HX,
                            data={"csrf_token": csrf(page)})
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.text
    sent = len(console.link.sent)
    olga.post("/terminals/M-OK/reset-db", headers=HX,
              data={"csrf_token": csrf(page), "confirm": "yes"})
    serial, command = console.link.sent[sent]
    assert (serial, command["command"], command["args"]) == ("M-OK", "reset_db", {})
    console.result("M-OK", command["id"], reset=True, dropped_events=2,
                   created_at="2026-12-01T05:00:00.000Z", pending_events=0)
    panel = olga.get("/monitor/commands?serial=M-OK").text
    assert "fresh local database created 2026-12-01T05:00:00.000Z" in panel
    assert "2 pending event(s) dropped" in panel


def test_reboot_and_log_retrieval_for_the_selected_rows(console, olga):
    page = olga.get("/terminals?q=M-").text
    assert 'form="bulk" id="select-M-OK"' in page
    sent = len(console.link.sent)
    answer = olga.post("/terminals/bulk", headers=HX, data={
        "csrf_token": csrf(page), "command": "reboot",
        "serial": ["M-OK", "M-RED", "M-NEW", "M-L2"]})
    assert answer.status_code == 200
    assert [(s, c["command"]) for s, c in console.link.sent[sent:]] == [
        ("M-OK", "reboot"), ("M-RED", "reboot")]
    said = html.unescape(answer.text)
    assert "M-NEW: terminal 'M-NEW' is not paired" in said
    assert "M-L2: there is no terminal with serial 'M-L2'" in said, \
        "another location's terminal is answered as one that does not exist"
    sent = len(console.link.sent)
    olga.post("/terminals/bulk", headers=HX, data={
        "csrf_token": csrf(page), "command": "retrieve_logs", "serial": ["M-OK", "M-OLD"],
        "since": "2026-01-01T10:00", "until": "2026-01-01T11:00", "max_kb": "128"})
    assert [(s, c["args"]["max_size"]) for s, c in console.link.sent[sent:]] == [
        ("M-OK", 131072), ("M-OLD", 131072)]


def test_a_viewer_may_not_send_commands_and_a_dead_broker_fails_the_command(console):
    vic = log_in(console, "vic")
    page = vic.get("/terminals?q=M-OK").text
    assert "Reset local database" not in page and 'form="bulk"' not in page
    refused = vic.post("/terminals/M-OK/reboot", headers=HX,
                       data={"csrf_token": csrf(page), "confirm": "yes"})
    assert refused.status_code == 403 and "may not reboot" in refused.text
    console.link.down = True
    try:
        failed = console.call("olga", "POST", "/terminals/M-OK/commands",
                              json={"command": "reboot"})
    finally:
        console.link.down = False
    assert failed.status_code == 201 and failed.json()["state"] == "failed"
    assert "broker is not running" in failed.json()["error"]


def test_archives_are_kept_within_the_retention_limit(console):
    command = console.call("olga", "POST", "/terminals/M-RED/commands", json={
        "command": "retrieve_logs", "args": {"since": "2026-01-01T00:00:00Z",
                                             "until": "2026-01-02T00:00:00Z",
                                             "max_size": 4096}}).json()
    stored = [console.upload("M-RED", command["id"], f"archive {n}".encode())
              for n in range(5)]
    kept = console.archives.archives("M-RED")
    assert len(kept) == 3 == console.archives.keep
    assert {a["id"] for a in kept} == {a["id"] for a in stored[2:]}
    files = {p.name for p in console.archives.directory.iterdir() if p.name.startswith("M-RED")}
    assert files == {a["filename"] for a in kept}, "the files went with their rows"


def test_a_user_of_another_location_sees_none_of_it(console, olga, otto):
    """The cross-location attacks: every surface of the monitor, by name and by guessing."""
    command = console.call("olga", "POST", "/terminals/M-OK/commands", json={
        "command": "retrieve_logs", "args": {"since": "2026-01-01T00:00:00Z",
                                             "until": "2026-01-02T00:00:00Z",
                                             "max_size": 4096}}).json()
    archive = console.upload("M-OK", command["id"], b"L1's logs")
    # The monitor: list, filters naming L1, live rows, exports.
    assert listed(console, "otto", location="L1") == {}
    assert set(listed(console, "otto")) == {"M-L2"}
    rows = otto.get("/terminals/rows", params={"location": "L1", "q": "M-"}, headers=HX)
    assert rows.status_code == 200 and "M-OK" not in rows.text and "M-RED" not in rows.text
    assert "M-OK" not in otto.get("/terminals.csv", params={"location": "L1"}).text
    sheet = openpyxl.load_workbook(io.BytesIO(otto.get("/terminals.xlsx").content)).active
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == ["M-L2"]
    # Commands: not sendable, not readable, not in the live panel.
    page = otto.get("/terminals").text
    for path in ("/terminals/M-OK/reboot", "/terminals/M-OK/reset-db", "/terminals/M-OK/logs"):
        answer = otto.post(path, headers=HX, data={
            "csrf_token": csrf(page), "confirm": "yes", "since": "2026-01-01T00:00",
            "until": "2026-01-01T01:00", "max_kb": "4"})
        assert answer.status_code == 404, (path, answer.status_code)
    assert_error(console.call("otto", "POST", "/terminals/M-OK/commands",
                              json={"command": "reboot"}), 404, "unknown_terminal")
    assert_error(console.call("otto", "GET", "/terminals/M-OK/commands"), 404,
                 "unknown_terminal")
    assert otto.get("/monitor/commands", params={"serial": "M-OK"}).status_code == 404
    assert "M-OK" not in otto.get("/monitor/commands").text
    # Archives: by id, through the page and the API, exactly as an archive that is not there.
    for guess in (archive["id"], "0" * 16):
        assert_error(console.call("otto", "GET", f"/archives/{guess}"), 404, "unknown_archive")
        assert otto.get(f"/archives/{guess}").status_code == 404
    assert olga.get(f"/archives/{archive['id']}").content == b"L1's logs"
    audit = console.call("ada", "GET", "/audit", params={"actor": "otto"}).json()["entries"]
    assert {e["result"] for e in audit if e["serial"] == "M-OK"} == {"unknown_terminal"}


def test_the_firmware_page_and_its_admin(tmp_path):
    made = MonitorConsole(tmp_path)
    made.add_bundle(20230801, "20190131-20230731")
    for serial, location in (("F-L1", "L1"), ("F-L2", "L2")):
        made.terminal(serial, location, paired=False)
        assert made.gate.hello(serial, 20230101, "rpi4", peer=f"198.51.100.{location[-1]}")["next"]
    bundle = made.catalog.bundles()[0]
    made.gate.sent("F-L1", bundle.id, bundle.size // 2)
    upgrading = listed(made, q="F-")["F-L1"]
    assert (upgrading["version"], upgrading["highlight"]) == (20230101, "yellow"), \
        "not paired yet, but the monitor knows what it runs from the upgrade under way"
    ada, olga, lena = (log_in(made, name) for name in ("ada", "olga", "lena"))
    page = olga.get("/firmware").text
    assert "Minimum version to pair: <strong>20230801</strong>" in page
    assert "running 20190131-20230731 → 20230801" in page
    assert "F-L1" in page and "step 1 of 1" in page and "50 %" in page
    assert "F-L2" not in page, "another location's upgrade is not shown"
    assert "2 of 2 upgrade slots in use" in page
    assert "Add to the catalog" not in page, "an operator does not change firmware"
    lenas = lena.get("/firmware").text
    assert "Add to the catalog" not in lenas, \
        "nor an admin of some locations: the catalog is the whole fleet's"
    refused = lena.post("/firmware/policy", data={"csrf_token": csrf(lenas),
                                                  "min_pair_version": "20240101"})
    assert refused.status_code == 403 and "whole fleet" in refused.text

    admin_page = ada.get("/firmware").text
    stranger = make_key(tmp_path / "stranger", "stranger", trusted=False)
    src = make_tree(tmp_path / "src-x", 20240601, big=3000)
    make_bundle(tmp_path / "x.fw", src, [stranger], version=20240601, install_from="20230801-")
    answer = ada.post("/firmware/bundles", data={"csrf_token": csrf(admin_page)},
                      files={"bundle": ("x.fw", (tmp_path / "x.fw").read_bytes())})
    assert answer.status_code == 422 and "not signed by a trusted key" in answer.text
    assemble(tmp_path / "h.fw", hostile_tar("dotdot"), [made.key], version=20240601,
             install_from="20230801-")
    hostile = ada.post("/firmware/bundles", data={"csrf_token": csrf(admin_page)},
                       files={"bundle": ("h.fw", (tmp_path / "h.fw").read_bytes())})
    assert hostile.status_code == 422 and "h.fw" in hostile.text, "signed, but no terminal " \
        "would install its payload: refused with the reason"
    make_bundle(tmp_path / "y.fw", src, [made.key], version=20240601, install_from="20230801-")
    added = ada.post("/firmware/bundles", data={"csrf_token": csrf(admin_page)},
                     files={"bundle": ("y.fw", (tmp_path / "y.fw").read_bytes())})
    assert added.status_code == 200 and "version 20240601" in added.text
    bad = ada.post("/firmware/policy", data={"csrf_token": csrf(admin_page),
                                             "min_pair_version": "2024"})
    assert bad.status_code == 400 and "YYYYMMDD" in bad.text
    ada.post("/firmware/policy", data={"csrf_token": csrf(admin_page),
                                       "min_pair_version": "20240601"})
    assert made.catalog.min_pair_version() == 20240601
    audit = made.call("ada", "GET", "/audit", params={"actor": "ada"}).json()["entries"]
    assert [(e["action"], e["result"]) for e in audit][:4] == [
        ("firmware_policy", "ok"), ("firmware_add", "ok"), ("firmware_add", "refused"),
        ("firmware_add", "refused")]
    api = made.call("olga", "GET", "/firmware").json()
    assert [u["serial"] for u in api["upgrading"]] == ["F-L1"] and api["max_concurrent"] == 2
