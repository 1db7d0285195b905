"""Every page at 900×600, 1180×760 and 1440×900 (light theme: the dark one changes colours only): no text is
elided or clipped unless the widget says it may (an ElidedLabel whose tooltip holds the whole text, or the
``elides`` property), no widget spills out of a parent that does not scroll, no scroll area scrolls inside
another the same way, and no table or tree needs a sideways scroll bar at the default size.

The scenes are tests/ui/screens.py's (also rendered to PNGs by ``make screens``); the window is built once and
walked through every scene at every size. A known problem that another change fixes is an ``xfail(strict)``
naming it: the case flips to a failure (to be unmarked) as soon as it is fixed.
"""

from __future__ import annotations

import gc

import pytest

from tests.ui.screens import DEFAULT_SIZE, SIZES, Scenes, private_environment, seed_home, set_theme

# (scene, size, check) -> the known problem (issue 17's list) that makes it fail today.
KNOWN: dict[tuple[str, tuple[int, int], str], str] = {}


def _id(scene: str, size: tuple[int, int]) -> str:
    return f"{scene}-{size[0]}x{size[1]}"


def _cases(check: str, sizes=SIZES) -> list:
    cases = []
    for scene in Scenes.ORDER:
        for size in sizes:
            reason = KNOWN.get((scene, size, check))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(scene, size, id=_id(scene, size), marks=marks))
    return cases


@pytest.fixture(autouse=True)
def collect_on_the_gui_thread():
    """The cases here only read what the module's fixture found (no widgets, no workers of their own), so the
    collection tests/ui/conftest.py runs before every test (a fifth of a second, over 200 cases) runs once, in
    ``problems``."""
    yield


@pytest.fixture(scope="module")
def problems(qapp, tmp_path_factory) -> dict[tuple[str, tuple[int, int]], dict[str, list[str]]]:
    """Each scene at each size: its problems by check (built once for the module, in a private home)."""
    gc.collect()  # earlier tests' garbage, on the GUI thread (see tests/ui/conftest.py)
    home = tmp_path_factory.mktemp("screens")
    palette, sheet = qapp.palette(), qapp.styleSheet()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in private_environment(home).items():
            patch.setenv(name, value)
        set_theme(qapp, "light")
        scenes = None
        try:
            scenes = Scenes(seed_home(home))
            yield {(shot.scene, shot.size): shot.problems for shot in scenes.shots()}
        finally:
            if scenes is not None:
                scenes.close()
            qapp.setPalette(palette)
            qapp.setStyleSheet(sheet)


def test_every_scene_was_seen_at_every_size(problems):
    assert set(problems) == {(scene, size) for scene in Scenes.ORDER for size in SIZES}


@pytest.mark.parametrize(("scene", "size"), _cases("cut"))
def test_no_text_is_cut(problems, scene, size):
    found = problems[scene, size]["cut"]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("scene", "size"), _cases("overflow"))
def test_no_widget_spills_out_of_its_parent(problems, scene, size):
    found = problems[scene, size]["overflow"]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("scene", "size"), _cases("nested"))
def test_no_scroll_area_scrolls_inside_another(problems, scene, size):
    found = problems[scene, size]["nested"]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("scene", "size"), _cases("hscroll", (DEFAULT_SIZE,)))
def test_no_table_scrolls_sideways_at_the_default_size(problems, scene, size):
    found = problems[scene, size]["hscroll"]
    assert not found, "\n".join(found)
