"""paths, settings, progress and errors."""

from __future__ import annotations

import threading

import pytest

from macapp.core import paths
from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken, Progress
from macapp.core.settings import Settings
from macapp.core.units import format_bytes, format_count, format_duration, format_params, parse_bytes, time_left


def test_macapp_home_override(isolated_home):
    assert paths.data_dir() == isolated_home
    assert paths.logs_dir().parent == isolated_home
    assert paths.hf_hub_cache() == isolated_home / "hf-cache"


def test_on_a_mac_data_and_logs_go_where_mac_apps_keep_them(monkeypatch, tmp_path):
    """Without MACAPP_HOME: ~/Library/Application Support/Orchard and ~/Library/Logs/Orchard, as
    platformdirs' macOS rules give them (run here on Linux by using those rules directly)."""
    import platformdirs
    from platformdirs.macos import MacOS

    monkeypatch.delenv("MACAPP_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: MacOS(*a, **k).user_data_dir)
    monkeypatch.setattr(platformdirs, "user_log_dir", lambda *a, **k: MacOS(*a, **k).user_log_dir)
    assert paths.data_dir() == tmp_path / "Library" / "Application Support" / "Orchard"
    assert paths.logs_dir() == tmp_path / "Library" / "Logs" / "Orchard"
    assert paths.logs_dir().is_dir() and paths.chats_db().parent == paths.data_dir()


def test_the_welcome_is_for_new_people_only(isolated_home):
    assert Settings.load().welcome_done is False  # nothing saved yet: the first run
    paths.settings_file().write_text('{"default_ctx": 4096}')  # saved before the welcome existed
    assert Settings.load().welcome_done is True
    Settings(default_ctx=4096).save()  # saved now, welcome not answered yet
    assert Settings.load().welcome_done is False


def test_settings_round_trip_and_bad_file(isolated_home):
    s = Settings(model_dirs=["/x"], default_ctx=4096)
    s.save()
    assert Settings.load() == s
    paths.settings_file().write_text("{not json")
    assert Settings.load() == Settings()
    paths.settings_file().write_text('{"default_ctx": "big", "model_dirs": ["/y"], "unknown": 1}')
    loaded = Settings.load()
    assert loaded.default_ctx == Settings().default_ctx and loaded.model_dirs == ["/y"]


def test_cancel_token_across_threads():
    token = CancelToken()
    threading.Timer(0.05, token.cancel).start()
    assert token.wait(2.0) is True
    with pytest.raises(Cancelled):
        token.raise_if_cancelled()
    assert Progress("download", 5, 10).fraction == 0.5
    assert Progress("scan").fraction is None


def test_user_error_text():
    assert str(UserError("model too big", hint="try a smaller quant")) == "model too big (try a smaller quant)"


def test_units():
    assert format_bytes(1536) == "1.5 KB"
    assert format_bytes(16 * 1024**3) == "16 GB"  # memory as Activity Monitor shows it
    assert format_params(7_241_732_096) == "7.2 B"
    assert format_params(136_000) == "136 K"
    assert format_count(32000) == "32,000"
    assert parse_bytes("16G") == 16 * 1024**3
    assert parse_bytes("8 GiB") == 8 * 1024**3
    assert parse_bytes("123") == 123
    with pytest.raises(ValueError):
        parse_bytes("lots")


def test_settings_updates_from_threads_do_not_lose_each_other(isolated_home):
    from macapp.core.settings import update_settings

    def add(i: int) -> None:
        update_settings(lambda s: s.model_files.append(f"/m/{i}.gguf"))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(Settings.load().model_files) == sorted(f"/m/{i}.gguf" for i in range(20))


def test_library_scan_is_cancellable(tmp_path, tiny_models):
    from macapp.core.models.library import iter_library

    for i in range(3):
        (tmp_path / f"m{i}.gguf").write_bytes(tiny_models["mha_f32"].read_bytes())
    token = CancelToken()
    scan = iter_library(Settings(model_dirs=[str(tmp_path)]), token)
    assert next(scan).facts is not None
    token.cancel()
    with pytest.raises(Cancelled):
        next(scan)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "1 s"),
        (42.2, "43 s"),
        (59.0, "59 s"),
        (60.0, "1 min"),
        (540, "9 min"),
        (3599, "1 h 0 min"),
        (4000, "1 h 7 min"),
    ],
)
def test_durations_read_the_same_in_the_window_and_the_cli(seconds, text):
    assert format_duration(seconds) == text
    assert time_left(seconds) == f"{text} left"


@pytest.mark.parametrize("seconds", [None, -1.0, float("inf"), float("nan")])
def test_no_estimate_reads_as_nothing(seconds):
    assert format_duration(seconds) == ""
    assert time_left(seconds) == ""


def test_one_file_hash_for_everything_and_a_resumed_digest_continues(tmp_path):
    import hashlib

    from macapp.core.digest import file_sha256, hash_file
    from macapp.core.errors import Cancelled
    from macapp.core.progress import CancelToken

    head, tail = tmp_path / "head", tmp_path / "tail"
    head.write_bytes(b"a" * 3_000_000)
    tail.write_bytes(b"b" * 10)
    assert file_sha256(head) == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    resumed = hash_file(head, block=1 << 16)  # a download resumes: the bytes on disk first, then the rest
    resumed.update(tail.read_bytes())
    assert resumed.hexdigest() == hashlib.sha256(b"a" * 3_000_000 + b"b" * 10).hexdigest()
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        file_sha256(head, token)
