"""The `window` fixture: an 800×480 pygame window (SDL's dummy driver in the unit tests), closed
after the test with the font cache cleared, so no test sees another's surfaces or fonts."""

import pygame
import pytest

from display import fonts


@pytest.fixture
def window():
    pygame.display.init()
    pygame.font.init()
    yield pygame.display.set_mode((800, 480))
    fonts.clear_cache()
    pygame.quit()
