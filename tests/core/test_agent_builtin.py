"""The built-in tools on their own: what they return, their limits, and what a grant lets them do."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from macapp.core.agent.builtin import (
    BUILTIN_NAMES,
    ShellLimits,
    builtin_toolbox,
    list_folder_tool,
    run_command_tool,
    search_documents_tool,
)
from macapp.core.agent.guard import Folders, Grants, PathRefused
from macapp.core.errors import UserError
from macapp.core.progress import CancelToken


@pytest.fixture
def work(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "b.txt").write_text("bee")
    (folder / "A").mkdir()
    return folder


def shell(work, **limits):
    return run_command_tool(Folders.of([work]), ShellLimits(**limits))


def test_a_command_gets_no_inherited_secrets_and_runs_in_the_working_folder(work, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    result = shell(work).run({"command": "pwd; env"}, CancelToken())
    assert not result.is_error and result.text.startswith("exit code 0")
    lines = result.text.splitlines()
    assert lines[1] == str(work.resolve())
    names = {line.split("=", 1)[0] for line in lines[2:] if "=" in line}
    assert "secret" not in result.text and names <= {"PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"}
    assert f"HOME={work.resolve()}" in lines


def test_a_command_is_stopped_at_its_time_limit_and_its_output_capped(work):
    began = time.monotonic()
    result = shell(work, time_limit_s=0.3).run({"command": "echo started; sleep 30"}, CancelToken())
    assert time.monotonic() - began < 2 and result.is_error
    assert "time limit of 0.3 s" in result.text and "started" in result.text
    result = shell(work, output_cap=1000).run({"command": "yes x | head -c 50000"}, CancelToken())
    assert result.text.startswith("exit code 0") and "[output cut: 49000 more bytes]" in result.text
    assert result.text.count("x\n") == 500  # exactly the cap kept


def test_a_failing_command_is_an_error_with_its_exit_code(work):
    result = shell(work).run({"command": "echo oops >&2; exit 3"}, CancelToken())
    assert result.is_error and result.text.splitlines() == ["exit code 3", "oops"]


def test_cancel_stops_a_command_at_once(work):
    cancel = CancelToken()
    import threading

    threading.Timer(0.2, cancel.cancel).start()
    began = time.monotonic()
    result = shell(work).run({"command": "sleep 30"}, cancel)
    assert time.monotonic() - began < 1 and "cancelled" in result.text


def test_list_folder_names_folders_and_sizes(work):
    result = list_folder_tool(Folders.of([work])).run({"path": "."}, CancelToken())
    assert result.text.splitlines() == [".:", "A/", "b.txt (3 bytes)"]


def test_the_current_time_is_now(work):
    toolbox = builtin_toolbox(Grants(tools=("current_time",)))
    text = toolbox.get("current_time").run({}, CancelToken()).text
    assert datetime.now().astimezone().strftime("%Y-%m-%d") in text


def test_folders_refuse_what_is_not_a_folder_or_not_a_path(work):
    with pytest.raises(UserError, match="not a folder"):
        Folders.of([work / "b.txt"])
    with pytest.raises(PathRefused, match="No folder is granted"):
        Folders().resolve("b.txt")
    with pytest.raises(PathRefused, match="not a usable path"):
        Folders.of([work]).resolve("b\x00.txt")


def test_the_toolbox_holds_only_what_the_grants_allow(work):
    assert builtin_toolbox(Grants()).names == ("current_time",)
    assert builtin_toolbox(Grants(folders=(str(work),))).names == (
        "read_file",
        "list_folder",
        "write_file",
        "current_time",
    )
    assert "run_command" in builtin_toolbox(Grants(folders=(str(work),), shell=True))
    with pytest.raises(UserError, match="run_command is off"):
        builtin_toolbox(Grants(tools=("run_command",), folders=(str(work),)))
    with pytest.raises(UserError, match="needs a granted folder"):
        builtin_toolbox(Grants(tools=("read_file",)))
    with pytest.raises(UserError, match="No built-in tool is named delete_everything"):
        builtin_toolbox(Grants(tools=("delete_everything",)))
    with pytest.raises(UserError, match="needs this chat's documents"):
        builtin_toolbox(Grants(tools=("search_documents",)))
    assert set(BUILTIN_NAMES) == {
        t.spec.name for t in builtin_toolbox(Grants(folders=(str(work),), shell=True), collection="c")
    }


def test_search_documents_names_the_file_and_exact_page(tmp_path):
    from macapp.core.docs import ingest
    from macapp.core.docs.embedder import load_embedder
    from macapp.core.docs.index import DocumentIndex
    from macapp.core.progress import drain
    from tests.fixtures import pdfs

    pdfs.make_pdf(
        tmp_path / "field-guide.pdf",
        [
            "# Volcanoes\nMagma rises through cracks in the crust and erupts as lava, ash and gas.",
            "# Beekeeping\nBeekeepers puff smoke at the hive entrance to calm the colony before lifting frames.",
        ],
    )
    index = DocumentIndex(tmp_path / "index")
    embedder = load_embedder()
    drain(ingest.add_files("Guide", [tmp_path / "field-guide.pdf"], embedder, index=index))
    try:
        tool = search_documents_tool("Guide", embedder=embedder, index=index)
        result = tool.run({"query": "why do beekeepers use smoke?", "k": 1}, CancelToken())
        assert result.text.startswith("[1] field-guide.pdf, page 2:") and "smoke" in result.text
        assert tool.effect == "read"
    finally:
        index.close()
