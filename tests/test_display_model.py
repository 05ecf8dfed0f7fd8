"""Parsing the agent's screen model never raises and keeps what it can."""

import math

import pytest

from display.model import ScreenModel, parse_screen

GOOD = {"screen": "upgrading", "title": "Upgrading", "text": "Step one", "pairing_code": None,
        "serial": "BT1", "version": 20230801, "server": "192.0.2.1:8443", "progress": 40,
        "step": 1, "steps": 2, "detail": None, "seq": 7, "changed_at": 1.0}


def test_good_model_round_trips():
    m = parse_screen(GOOD)
    assert (m.screen, m.title, m.serial, m.version, m.progress, m.step, m.steps, m.seq) == (
        "upgrading", "Upgrading", "BT1", "20230801", 40.0, 1, 2, 7)


@pytest.mark.parametrize("raw", [None, [], "in_service", 42, {"screen": None}, {}])
def test_non_models_become_an_empty_model(raw):
    assert parse_screen(raw).screen == ""


def test_wrong_types_become_none_not_errors():
    m = parse_screen({"screen": "upgrading", "title": ["x"], "text": {"a": 1},
                      "progress": "50", "step": True, "steps": "2", "version": None,
                      "serial": 12345, "pairing_code": 3.5, "seq": "x"})
    assert m.title is None and m.text is None and m.progress is None
    assert m.step is None and m.steps is None and m.version is None and m.seq is None
    assert m.serial == "12345"  # a numeric serial is still worth showing
    assert m.pairing_code == "3.5"


def test_out_of_range_numbers_are_clamped_or_dropped():
    assert parse_screen({"progress": 250}).progress == 100
    assert parse_screen({"progress": -3}).progress == 0
    assert parse_screen({"progress": math.nan}).progress is None
    assert parse_screen({"step": 3, "steps": 2}).step is None
    assert parse_screen({"step": 0, "steps": 0}).steps is None


def test_text_is_cleaned_and_bounded():
    m = parse_screen({"screen": "Weird Screen!/../x", "title": "a\x00b\x1b[31mc",
                      "text": "x" * 50_000, "detail": "\ud800lone surrogate"})
    assert m.screen == "weird_screen_x"  # safe as a file name part
    assert "\x00" not in m.title and "\x1b" not in m.title
    assert len(m.text) <= 1000 and m.text.endswith("...")
    assert "\ud800" not in m.detail


def test_visual_key_ignores_seq_only():
    a = parse_screen(GOOD)
    assert a.visual_key() == parse_screen({**GOOD, "seq": 8, "changed_at": 2.0}).visual_key()
    assert a.visual_key() != parse_screen({**GOOD, "progress": 41}).visual_key()
    assert isinstance(ScreenModel().visual_key(), tuple)
