"""Text wrapping and fitting measure pixels, break CJK and long words, never overflow."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import pygame
import pytest

from display import fonts
from display.layout import fit, truncate, wrap


@pytest.fixture(scope="module")
def font():
    pygame.font.init()
    yield fonts.get(24)
    fonts.clear_cache()


TEXTS = [
    "The terminal cannot connect through the VPN. Its VPN configuration has probably not been "
    "generated on the server yet.",
    "Терминал не может подключиться через VPN. Вероятно, конфигурация VPN ещё не создана.",
    "终端无法通过VPN连接。服务器上可能还没有生成VPN配置。请稍候，终端会自动重试。",
    "https://very-long-server-name.example.operator.internal:8443/api/v1/with/no/spaces/at/all",
]


@pytest.mark.parametrize("text", TEXTS, ids=["latin", "cyrillic", "cjk", "long-word"])
def test_wrapped_lines_fit_and_keep_every_character(font, text):
    width = 300
    lines = wrap(font, text, width)
    assert len(lines) > 1
    assert all(font.size(line)[0] <= width for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_explicit_newlines_are_kept(font):
    assert wrap(font, "one\ntwo", 500) == ["one", "two"]


def test_fit_prefers_the_largest_size_that_fits():
    pygame.font.init()
    short = fit(fonts.get, [40, 30, 20], "Short text", 600, 200)
    assert short.size == 40
    long_text = " ".join(["word"] * 80)
    smaller = fit(fonts.get, [40, 30, 20], long_text, 600, 200)
    assert smaller.size < 40 and smaller.height <= 200


def test_fit_truncates_when_nothing_fits():
    pygame.font.init()
    fitted = fit(fonts.get, [20], " ".join(["overflow"] * 400), 300, 60)
    assert fitted.height <= 60
    assert fitted.lines[-1].endswith("...")
    assert all(fitted.font.size(line)[0] <= 300 for line in fitted.lines)


def test_truncate(font):
    assert truncate(font, "fits", 500) == "fits"
    cut = truncate(font, "x" * 200, 100)
    assert cut.endswith("...") and font.size(cut)[0] <= 100
