"""``macapp adapters delete``: an adapter's folder goes, finished or not; bad names touch nothing."""

from __future__ import annotations

import json

import pytest

from macapp.cli.main import main
from macapp.core import paths
from macapp.core.tuning.adapters import adapter_path, list_adapters, write_manifest


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def make_adapter(name: str, finished: bool) -> None:
    folder = adapter_path(name)
    folder.mkdir(parents=True)
    (folder / "adapters.safetensors").write_bytes(b"x" * 1000)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "run.json").write_text(json.dumps({"base": "/models/base", "settings": {}}))
    if finished:
        write_manifest(
            name,
            base_path="/models/base",
            base_id={},
            dataset_sha256="ab" * 32,
            settings={},
            train_loss=1.0,
            val_loss=1.2,
            iterations=10,
        )


def test_delete_a_finished_and_an_unfinished_adapter(capsys):
    make_adapter("tone", finished=True)
    make_adapter("half", finished=False)
    code, out, err = run(capsys, "adapters", "delete", "tone", "--json")
    assert code == 0, err
    gone = json.loads(out)
    assert gone["deleted"] == "tone" and gone["status"] == "complete" and gone["size_bytes"] > 1000
    assert not adapter_path("tone").exists()
    assert [a.name for a in list_adapters(include_incomplete=True)] == ["half"]

    code, out, _err = run(capsys, "adapters", "delete", "half")
    assert code == 0 and out.startswith("Deleted the adapter half")
    code, out, _err = run(capsys, "adapters", "--json")  # the plain listing still works
    assert code == 0 and json.loads(out) == []
    code, out, _err = run(capsys, "adapters", "list", "--json")
    assert code == 0 and json.loads(out) == []


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("nobody", "No adapter named 'nobody'"),
        ("../precious", "Invalid adapter name"),
    ],
)
def test_unknown_or_bad_names_are_one_line_errors(capsys, name, said):
    precious = paths.data_dir() / "precious"
    precious.mkdir(parents=True)
    code, out, err = run(capsys, "adapters", "delete", name)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and said in err and err.count("\n") == 1, err
    assert precious.is_dir()
