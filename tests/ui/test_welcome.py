"""The first-run welcome: shown on an empty data dir, recommends a model that fits this Mac, one-click download.

The Macs are built from supplied memory figures (``hardware.mac_hardware``) and handed to the window
the way the Models page's probe hands them over (``apply_hardware`` emits ``hardwareDetected``).
Downloads go to a real DownloadQueue talking to the fake Hub on 127.0.0.1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from macapp.core.hardware import Hardware, apple, bandwidth, mac_hardware
from macapp.core.hardware.bandwidth import decode_bandwidth
from macapp.core.models.catalog import recommend
from macapp.core.models.speed import format_speed
from macapp.core.settings import Settings
from macapp.core.units import format_bytes, format_params
from macapp.ui.welcome.page import CHOOSING, MEASURING, PROBE_FAILED, WelcomeScreen

GB = 1024**3


def mac(ram_gb: int) -> Hardware:
    """An Apple Silicon Mac with ``ram_gb`` of memory, all of it free (Metal's default working set)."""
    return mac_hardware(apple.MacMemory("Apple M2", ram_gb * GB, ram_gb * GB, None, None), "macOS 15.1", 8)


def show_hardware(qtbot, window, hardware: Hardware) -> None:
    """Hand the window a probe's answer and wait until the welcome shows its pick."""
    with qtbot.waitSignal(window.welcome.recommendationShown, timeout=15_000):
        window.models_page.apply_hardware(hardware)


def click(qtbot, button) -> None:
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_first_run_shows_the_welcome_with_this_machine(qtbot, window_factory, isolated_home):
    assert not (isolated_home / "settings.json").exists()
    window = window_factory()
    welcome = window.welcome
    assert window.welcome_visible and welcome.geometry() == window.pages.rect()
    assert window.sidebar.currentRow() == -1  # no page is selected under the welcome
    hw = window.models_page.hardware  # the Models page's probe of this machine, not a second one
    assert welcome.hardware is hw
    qtbot.waitUntil(lambda: welcome.status_label.text() != CHOOSING or welcome.pick is not None, timeout=15_000)
    assert welcome.chip_fact.value.text() == hw.chip
    assert welcome.memory_fact.value.text() == format_bytes(hw.total_bytes)
    assert welcome.budget_fact.value.text() == format_bytes(hw.budget_bytes)
    assert welcome.skip_button.text() == "Skip"  # the library is empty


def test_while_probing_it_says_so_and_a_failed_probe_still_lets_you_browse(qtbot):
    welcome = WelcomeScreen()
    qtbot.addWidget(welcome)
    welcome.show()
    assert welcome.hardware_note.text() == MEASURING and welcome.status_label.text() == CHOOSING
    assert not welcome.download_button.isVisible() and welcome.browse_button.isVisible()
    welcome.hardware_unknown()
    assert welcome.status_label.text() == PROBE_FAILED and welcome.pick is None
    assert welcome.budget_fact.value.text() == "unknown"
    assert not welcome.download_button.isVisible()
    with qtbot.waitSignal(welcome.browseRequested, timeout=1_000):
        click(qtbot, welcome.browse_button)


def test_the_pick_fits_each_mac_and_more_memory_never_picks_a_smaller_model(qtbot, window_factory):
    window = window_factory()
    welcome = window.welcome
    params = []
    for ram_gb in (8, 16, 24):
        hw = mac(ram_gb)
        show_hardware(qtbot, window, hw)
        pick = welcome.pick
        assert pick is not None, welcome.status_label.text()
        est = pick.estimate
        assert est.verdict == "fits" and est.gpu_bytes <= hw.budget_bytes == est.budget_bytes
        assert est.backend == "metal"
        best = recommend(hw.budget_bytes, backend="metal", ctx=8192, decode_bandwidth=decode_bandwidth(hw).bytes_per_s)[
            0
        ]
        assert (pick.entry.id, pick.file.quant) == (best.entry.id, best.file.quant)
        assert pick.readable and welcome.speed_label.isVisible()
        assert welcome.speed_label.text() == f"Answers at {format_speed(pick.tokens_per_s)} on this Mac"
        assert welcome.machine_title.text() == "This Mac"
        # what the card says
        assert welcome.budget_fact.value.text() == format_bytes(hw.budget_bytes)
        assert welcome.memory_fact.value.text() == format_bytes(ram_gb * GB)
        assert welcome.name_label.text() == pick.entry.name
        facts = welcome.facts_label.text()
        for part in (
            format_params(pick.entry.facts.parameters),
            pick.file.quant,
            format_bytes(pick.file.approx_bytes),
            pick.entry.licence,
        ):
            assert part in facts
        assert welcome.estimate_label.text() == (
            f"needs about {format_bytes(est.total_bytes)} of {format_bytes(hw.budget_bytes)}"
        )
        assert welcome.verdict_label.text() == "Fits" and welcome.bar.verdict == "fits"
        assert (
            welcome.download_button.isVisible()
            and format_bytes(pick.file.approx_bytes) in welcome.download_button.text()
        )
        params.append(pick.entry.facts.parameters)
    assert params == sorted(params) and params[0] < params[-1]


def test_a_cpu_only_box_gets_a_small_model_and_its_speed(qtbot, window_factory, tmp_path, monkeypatch):
    """2 cores and 24 GB without Metal: memory alone picked a 14B Q8_0; speed picks a small model."""
    monkeypatch.setattr(bandwidth, "_measured", {"AMD EPYC|2|25769803776": 14e9})  # as measured on such a VM
    window = window_factory()
    box = Hardware(
        os="Linux 6.1",
        machine="x86_64",
        chip="AMD EPYC",
        cpu_count=2,
        total_bytes=24 * GB,
        available_bytes=23 * GB,
        gpu="cpu",
        gpu_working_set_bytes=None,
        wired_limit_mb=None,
        budget_bytes=23 * GB,
        budget_rule="available memory (no Metal here)",
    )
    show_hardware(qtbot, window, box)
    welcome = window.welcome
    pick = welcome.pick
    assert pick is not None and pick.entry.facts.parameters < 2e9 and pick.file.quant == "Q4_K_M"
    by_memory = recommend(box.budget_bytes, backend="cpu", ctx=8192)[0]
    assert by_memory.entry.facts.parameters > 12e9 and by_memory.file.quant == "Q8_0"
    speed = format_speed(pick.tokens_per_s)
    assert welcome.speed_label.isVisible() and welcome.speed_label.text().startswith(
        f"Answers at {speed} on this computer"
    )
    assert "slower than reading pace" in welcome.speed_label.text()  # 2 cores: nothing that fits is readable
    assert decode_bandwidth(box).basis in welcome.speed_label.toolTip()
    assert welcome.machine_title.text() == "This computer" and "this computer" in welcome.lead_label.text()
    assert "this Mac" not in welcome.hardware_note.text() + welcome.lead_label.text()
    welcome.resize(900, 820)
    welcome.grab().save(str(tmp_path / "welcome-cpu.png"))
    if os.environ.get("MACAPP_SHOT_DIR"):  # keep the picture for a look (see the issue note)
        welcome.grab().save(os.path.join(os.environ["MACAPP_SHOT_DIR"], "welcome-cpu.png"))


def test_a_mac_too_busy_for_any_model_gets_no_download(qtbot, window_factory):
    window = window_factory()
    busy = mac_hardware(apple.MacMemory("Apple M1", 8 * GB, GB // 4, None, None))
    show_hardware(qtbot, window, busy)
    assert window.welcome.pick is None and "No curated model fits" in window.welcome.status_label.text()
    assert not window.welcome.download_button.isVisible() and window.welcome.browse_button.isVisible()


def test_download_enqueues_the_pick_on_the_real_queue_and_shows_it(qtbot, window_factory, fake_hub, tiny_models):
    window = window_factory()
    hw = mac(16)
    show_hardware(qtbot, window, hw)
    pick = window.welcome.pick
    fake_hub.add_file(pick.entry.repo, pick.file.file, tiny_models["tied_q8"])  # served by the fake Hub
    qtbot.waitUntil(lambda: window.download_queue is not None, timeout=5_000)

    click(qtbot, window.welcome.download_button)
    jobs = window.download_queue.jobs()
    assert [(j.repo_id, j.files) for j in jobs] == [(pick.entry.repo, [pick.file.file])]
    assert not window.welcome_visible and window.pages.currentWidget() is window.discover_page
    assert Settings.load().welcome_done
    panel = window.discover_page.downloads
    name = Path(pick.file.file).name
    qtbot.waitUntil(lambda: any(r.job.name == name for r in panel.rows.values()), timeout=5_000)
    row = next(r for r in panel.rows.values() if r.job.name == name)
    assert row.isVisibleTo(window) and row.repo_label.full_text() == pick.entry.repo
    qtbot.waitUntil(lambda: row.job.state == "done", timeout=30_000)
    qtbot.waitUntil(lambda: name in [e.name for e in window.models_page.table_model.entries()], timeout=15_000)


@pytest.mark.parametrize("button, page", [("skip_button", "models_page"), ("browse_button", "discover_page")])
def test_answering_saves_welcome_done_and_the_next_start_goes_to_the_pages(
    qtbot, window_factory, model_dir, button, page
):
    Settings(model_dirs=[str(model_dir)]).save()  # settings exist, but the welcome was never answered
    window = window_factory()
    assert window.welcome_visible
    qtbot.waitUntil(lambda: window.welcome.skip_button.text() == "I have models already", timeout=5_000)
    click(qtbot, getattr(window.welcome, button))
    assert not window.welcome_visible and window.pages.currentWidget() is getattr(window, page)
    assert window.sidebar.currentRow() >= 0
    saved = Settings.load()
    assert saved.welcome_done and saved.model_dirs == [str(model_dir)]  # nothing else was lost
    window.close()

    again = window_factory()
    assert again.welcome is None and not again.welcome_visible
    assert again.pages.currentWidget() is again.models_page and again.sidebar.currentRow() == 0


def test_choosing_a_page_hides_the_welcome_without_answering_it(qtbot, window_factory):
    window = window_factory()
    window.sidebar.setCurrentRow(2)
    assert not window.welcome_visible and window.pages.currentWidget() is window.chat_page
    assert not Settings.load().welcome_done  # it comes back next start
    window.app_menu.welcome_action.trigger()  # Help > Welcome to Orchard shows it again
    assert window.welcome_visible and window.welcome.hardware is window.models_page.hardware
