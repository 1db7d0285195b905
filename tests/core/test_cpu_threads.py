"""llama.cpp's CPU threads: --threads, else Settings' CPU threads, else automatic; every front end asks the same."""

from __future__ import annotations

import pytest

from macapp.core.engines import cpu_threads
from macapp.core.settings import Settings


def test_asked_then_the_setting_then_automatic(isolated_home):
    assert cpu_threads() is None and cpu_threads(3) == 3  # nothing set: automatic (None) unless asked
    Settings(cpu_threads=2).save()
    assert cpu_threads() == 2 and cpu_threads(5) == 5


def test_the_cli_passes_its_threads_to_the_engine(isolated_home, tiny_models, capsys, monkeypatch):
    import macapp.core.engines as engines
    from tests.cli.inprocess import run

    opened: list[int | None] = []
    real = engines.open_engine

    def recording(ref, **options):
        opened.append(options.get("n_threads"))
        return real(ref, **options)

    monkeypatch.setattr(engines, "open_engine", recording)
    model = str(tiny_models["mha_f32"])
    assert run(capsys, "run", model, "hi", "--max-tokens", "2", "--threads", "1", "--json")[0] == 0
    Settings(cpu_threads=2).save()
    assert run(capsys, "run", model, "hi", "--max-tokens", "2", "--json")[0] == 0
    assert opened == [1, 2]


@pytest.mark.parametrize("command", ["run", "serve", "ask", "agent"])
def test_zero_threads_is_a_usage_error(command, capsys):
    from tests.cli.inprocess import run

    with pytest.raises(SystemExit) as exit_:
        run(capsys, command, "--threads", "0")
    assert exit_.value.code == 2 and "--threads: must be at least 1, not 0" in capsys.readouterr().err
