"""``macapp models add | remove``: what Add model…, Add folder… and Settings' Remove do in the window."""

from __future__ import annotations

import shutil

import pytest

from macapp.cli.main import main
from macapp.core.settings import Settings
from tests.cli.inprocess import run, run_json


def test_a_file_is_added_listed_and_forgotten_but_stays_on_disk(capsys, tmp_path, tiny_models):
    model = tmp_path / "mine.gguf"
    shutil.copy(tiny_models["gqa_f16"], model)
    added = run_json(capsys, "models", "add", str(model))
    assert added["kind"] == "file" and added["path"] == str(model.resolve())
    [entry] = added["models"]
    assert entry["error"] is None and entry["facts"]["n_head_kv"] == 1
    listed = run_json(capsys, "models")
    assert [(e["id"], e["source"]) for e in listed] == [(entry["id"], "file")]
    assert Settings.load().model_files == [str(model.resolve())]

    again = run_json(capsys, "models", "add", str(model))  # adding twice keeps one
    assert again["models"][0]["id"] == entry["id"] and Settings.load().model_files == [str(model.resolve())]

    assert run_json(capsys, "models", "remove", entry["id"]) == {"kind": "file", "path": str(model.resolve())}
    assert run_json(capsys, "models") == [] and Settings.load().model_files == []
    assert model.is_file()


def test_a_folder_is_watched_and_forgotten_by_its_path(capsys, tmp_path, tiny_models):
    folder = tmp_path / "lib"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(tiny_models["mha_f32"], folder / "a.gguf")
    shutil.copy(tiny_models["tied_q8"], folder / "nested" / "b.gguf")
    code, out, err = run(capsys, "models", "add", str(folder))
    assert code == 0, err
    assert out.startswith(f"Watching {folder}: 2 models\n")

    listed = run_json(capsys, "models")
    assert sorted(e["path"] for e in listed) == [str(folder / "a.gguf"), str(folder / "nested" / "b.gguf")]
    assert {e["source"] for e in listed} == {"folder"}
    assert all(f"\n{e['id']} " in out for e in listed)  # the table shows the ids `macapp models` lists

    # one file of a watched folder cannot be forgotten on its own: the error says what to do
    inside = next(e for e in listed if e["path"].endswith("a.gguf"))
    code, out, err = run(capsys, "models", "remove", inside["id"])
    assert code == 1 and out == ""
    assert err.startswith("error: a.gguf is in the folder ") and err.count("\n") == 1
    assert f"macapp models remove {folder}" in err

    gone = run_json(capsys, "models", "--json", "remove", str(folder))  # --json before the action counts too
    assert gone == {"kind": "folder", "path": str(folder)}
    assert run_json(capsys, "models") == [] and Settings.load().model_dirs == []
    assert (folder / "a.gguf").is_file() and (folder / "nested" / "b.gguf").is_file()


def test_an_empty_folder_is_watched_for_later(capsys, tmp_path):
    added = run_json(capsys, "models", "add", str(tmp_path))
    assert added == {"kind": "folder", "path": str(tmp_path), "models": []}
    assert Settings.load().model_dirs == [str(tmp_path)]


def test_a_download_in_the_hf_cache_is_not_forgotten(capsys, isolated_home, tiny_models):
    snapshot = isolated_home / "hf-cache" / "models--org--repo" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    shutil.copy(tiny_models["mha_f32"], snapshot / "m-Q8_0.gguf")
    [entry] = run_json(capsys, "models")
    code, _out, err = run(capsys, "models", "remove", entry["id"])
    assert code == 1 and "Hugging Face cache" in err and "`hf cache rm model/org/repo`" in err
    assert err.count("\n") == 1
    assert (snapshot / "m-Q8_0.gguf").is_file()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["add", "{tmp}/nope.gguf"], "does not exist"),
        (["add", "{tmp}/notes.txt"], "notes.txt is not a .gguf file"),
        (["remove", "nope"], "no model or folder 'nope' in the library"),
        (["remove", "{tmp}/notes.txt"], "is not in the library"),
    ],
)
def test_bad_input_is_one_line(capsys, tmp_path, args, said):
    (tmp_path / "notes.txt").write_text("hello")
    code, out, err = run(capsys, "models", *[a.format(tmp=tmp_path) for a in args])
    assert code == 1 and out == ""
    assert err.startswith("error: ") and said in err and err.count("\n") == 1, err
    assert Settings.load().model_files == [] and Settings.load().model_dirs == []


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["models", "add"])
    assert exit_.value.code == 2
    assert "PATH" in capsys.readouterr().err
