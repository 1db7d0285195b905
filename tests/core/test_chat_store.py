"""The chat history store on a real SQLite file: branches, search, migrations, crash safety."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from macapp.core import paths
from macapp.core.chat.schema import MIGRATIONS
from macapp.core.chat.store import ChatStore, NotFoundError, default_title
from macapp.core.errors import UserError


@pytest.fixture
def store():
    with ChatStore() as s:
        yield s


def test_default_path_is_in_macapp_home(store):
    assert store.path == paths.chats_db()
    assert store.path.exists()


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("  Hello   there \nsecond line", "Hello there"),
        ("\n\nFirst real line", "First real line"),
        ("", "New chat"),
        ("word " * 30, " ".join(["word"] * 12) + "…"),
        ("x" * 100, "x" * 59 + "…"),
    ],
)
def test_default_title_is_the_first_line_cut_on_a_word(text, title):
    assert default_title(text) == title
    assert len(default_title(text)) <= 60


def test_conversations_create_list_rename_update_delete(store):
    a = store.create_conversation("First", model="m1", settings={"temperature": 0.5})
    b = store.create_conversation(system_prompt="Be brief.")
    assert (b.title, b.system_prompt, b.head_id) == ("New chat", "Be brief.", None)
    assert a.settings == {"temperature": 0.5}
    store.add_message(a.id, "user", "hi")  # a message makes `a` the most recently updated
    assert [c.id for c in store.list_conversations()] == [a.id, b.id]
    assert [c.id for c in store.list_conversations(limit=1)] == [a.id]

    assert store.rename_conversation(b.id, "  Renamed \n chat ").title == "Renamed chat"
    changed = store.update_conversation(a.id, adapter="lora-1", settings={"top_p": 0.9})
    assert (changed.model, changed.adapter, changed.title) == ("m1", "lora-1", "First")
    assert changed.settings == {"top_p": 0.9}
    assert store.update_conversation(a.id, model=None).model is None

    assert store.delete_conversation(a.id) is True
    assert store.delete_conversation(a.id) is False
    assert [c.id for c in store.list_conversations()] == [b.id]
    with pytest.raises(NotFoundError):
        store.get_conversation(a.id)


def test_thread_runs_root_to_head_with_metadata(store):
    conv = store.create_conversation()
    store.add_message(conv.id, "system", "You are terse.")
    user = store.add_message(conv.id, "user", "2+2?")
    answer = store.add_message(
        conv.id,
        "assistant",
        "4",
        model="tiny",
        adapter="a1",
        settings={"seed": 1},
        finish_reason="stop",
        prompt_tokens=12,
        completion_tokens=1,
        tokens_per_s=33.5,
    )
    assert answer.parent_id == user.id
    thread = store.thread(conv.id)
    assert [(m.role, m.content) for m in thread] == [("system", "You are terse."), ("user", "2+2?"), ("assistant", "4")]
    last = thread[-1]
    assert (last.model, last.adapter, last.settings, last.status) == ("tiny", "a1", {"seed": 1}, "done")
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens, last.tokens_per_s) == ("stop", 12, 1, 33.5)
    assert store.get_conversation(conv.id).head_id == answer.id
    assert store.get_conversation(conv.id).updated_at >= conv.updated_at
    with pytest.raises(ValueError):
        store.add_message(conv.id, "robot", "?")
    other = store.create_conversation()
    with pytest.raises(ValueError):
        store.add_message(other.id, "user", "x", parent_id=user.id)  # a parent from another conversation


def test_regenerate_keeps_versions_and_select_version_switches_branch(store):
    conv = store.create_conversation()
    user = store.add_message(conv.id, "user", "Tell a joke")
    first = store.add_message(conv.id, "assistant", "Joke one")
    follow = store.add_message(conv.id, "user", "Another")
    store.add_message(conv.id, "assistant", "Joke two")

    regen = store.begin_message(conv.id, parent_id=user.id)  # regenerate the first answer
    store.append_text(regen.id, "Better ")
    store.append_text(regen.id, "joke")
    store.finish_message(regen.id, "done", "stop", 5, 2, 10.0)
    assert [m.content for m in store.thread(conv.id)] == ["Tell a joke", "Better joke"]
    versions = store.versions(first.id)
    assert [m.content for m in versions] == ["Joke one", "Better joke"]
    assert [(m.version, m.version_count) for m in versions] == [(1, 2), (2, 2)]

    thread = store.select_version(first.id)  # back to the old branch, down to its newest leaf
    assert [m.content for m in thread] == ["Tell a joke", "Joke one", "Another", "Joke two"]
    assert thread[2].id == follow.id
    assert store.thread(conv.id) == thread
    assert [m.content for m in store.select_version(regen.id)] == ["Tell a joke", "Better joke"]


def test_edit_keeps_the_old_branch(store):
    conv = store.create_conversation()
    store.add_message(conv.id, "user", "Hello")
    store.add_message(conv.id, "assistant", "Hi!")
    question = store.add_message(conv.id, "user", "Capital of Frence?")
    store.add_message(conv.id, "assistant", "I am not sure what Frence is.")

    edited = store.edit_message(question.id, "Capital of France?")
    assert (edited.role, edited.parent_id, edited.version, edited.version_count) == ("user", question.parent_id, 2, 2)
    assert store.thread(conv.id)[-1].id == edited.id
    store.add_message(conv.id, "assistant", "Paris.")
    assert [m.content for m in store.thread(conv.id)][2:] == ["Capital of France?", "Paris."]

    old = store.select_version(question.id)
    assert [m.content for m in old][2:] == ["Capital of Frence?", "I am not sure what Frence is."]
    assert [m.content for m in store.versions(edited.id)] == ["Capital of Frence?", "Capital of France?"]


def test_search_finds_old_messages_and_titles_newest_first(store):
    old = store.create_conversation("Trip planning")
    store.add_message(old.id, "user", "Which museums should I visit in Amsterdam next spring?")
    store.add_message(old.id, "assistant", "The Rijksmuseum and the Van Gogh Museum.")
    new = store.create_conversation("Cooking")
    store.add_message(new.id, "user", "A soup recipe like the one in Amsterdam, please")

    hits = store.search("amsterdam")
    assert [h.conversation_id for h in hits] == [new.id, old.id]
    assert hits[1].conversation_title == "Trip planning" and hits[1].role == "user"
    assert "[Amsterdam]" in hits[1].snippet
    assert store.get_message(hits[1].message_id).content.startswith("Which museums")
    prefix = store.search("Rijks")  # the last word matches as a prefix
    assert len(prefix) == 1 and "[Rijksmuseum]" in prefix[0].snippet
    assert [h.conversation_id for h in store.search("spring amsterdam")] == [old.id]  # all words, any order
    title = [h for h in store.search("planning") if h.message_id is None]
    assert title and title[0].conversation_id == old.id and title[0].snippet == "Trip [planning]"

    store.delete_conversation(old.id)
    assert [h.conversation_id for h in store.search("amsterdam")] == [new.id]
    assert store.search("Rijksmuseum") == [] and store.search("planning") == []


@pytest.mark.parametrize(
    "query",
    [
        "what's \"up",
        "a AND (",
        "NOT",
        '"',
        "*",
        "NEAR(a b)",
        "content:x",
        "^x",
        "",
        "   ",
        "(((",
        "a OR",
        "-x",
        "x:y:z",
        "'; DROP TABLE messages; --",
    ],
)
def test_search_survives_hostile_queries(store, query):
    conv = store.create_conversation()
    store.add_message(conv.id, "user", "what's up? a AND b, NOT c; x:y:z DROP TABLE")
    assert isinstance(store.search(query), list)
    assert store.thread(conv.id)


def test_search_reads_quotes_and_operators_as_plain_words(store):
    conv = store.create_conversation()
    store.add_message(conv.id, "user", "So what's up with you")
    store.add_message(conv.id, "assistant", "Cats AND dogs")
    assert len(store.search("what's \"up")) == 1
    assert len(store.search("cats AND")) == 1


def test_migrations_recorded_and_reopen_is_idempotent(tmp_path):
    path = tmp_path / "chats.sqlite3"
    with ChatStore(path) as s:
        conv = s.create_conversation("Keep me")
        s.add_message(conv.id, "user", "persisted text")
    for _ in range(2):
        with ChatStore(path) as s:
            assert [c.title for c in s.list_conversations()] == ["Keep me"]
            assert s.search("persisted")[0].conversation_id == conv.id
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version").fetchall()
        assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1)) and all(r[1] for r in rows)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_newer_schema_version_is_a_user_error(tmp_path):
    path = tmp_path / "chats.sqlite3"
    ChatStore(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("INSERT INTO schema_migrations VALUES (?, 'later')", (len(MIGRATIONS) + 1,))
    db.close()
    with pytest.raises(UserError, match="newer Orchard") as err:
        ChatStore(path)
    assert err.value.hint and "update" in err.value.hint


@pytest.mark.parametrize("content", [b"not a database at all\n" * 50, b"hello"])
def test_non_sqlite_file_is_a_user_error_and_left_alone(tmp_path, content):
    path = tmp_path / "chats.sqlite3"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a SQLite database"):
        ChatStore(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chats.sqlite3"]  # no -wal/-shm either


def test_a_foreign_sqlite_database_is_a_user_error(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE notes (x)")
    db.close()
    with pytest.raises(UserError, match="not Orchard's chat history"):
        ChatStore(path)


def test_streaming_rows_left_behind_become_interrupted(tmp_path):
    path = tmp_path / "chats.sqlite3"
    s = ChatStore(path)
    conv = s.create_conversation()
    s.add_message(conv.id, "user", "write a poem")
    mine = s.begin_message(conv.id)
    s.append_text(mine.id, "Roses are ")
    assert s.get_message(mine.id).content == "Roses are "  # readers see streamed text before it finishes
    assert s.search("roses") == []  # indexed once it ends
    s.close()  # the store ends what it began
    orphan_store = ChatStore(path)
    orphan = orphan_store.begin_message(conv.id, parent_id=mine.parent_id)
    orphan_store.append_text(orphan.id, "Violets")
    # A writer that died without closing: its process is gone (a finished child's pid).
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    orphan_store._conn.execute("UPDATE messages SET writer_pid = ? WHERE id = ?", (int(dead_pid), orphan.id))

    with ChatStore(path) as s2:
        assert (s2.get_message(mine.id).status, s2.get_message(mine.id).content) == ("interrupted", "Roses are ")
        got = s2.get_message(orphan.id)
        assert (got.status, got.content) == ("interrupted", "Violets")
        assert {h.message_id for h in s2.search("roses violets") + s2.search("violets")} == {orphan.id}
    with pytest.raises(ValueError):
        orphan_store.append_text(orphan.id, "x")  # no longer streaming
    orphan_store._streaming.clear()
    orphan_store.close()


def test_finish_and_append_only_apply_to_streaming_messages(store):
    conv = store.create_conversation()
    done = store.add_message(conv.id, "user", "hi")
    with pytest.raises(ValueError):
        store.append_text(done.id, "more")
    with pytest.raises(ValueError):
        store.finish_message(done.id)
    live = store.begin_message(conv.id)
    with pytest.raises(ValueError):
        store.finish_message(live.id, "streaming")
    store.append_text(live.id, "")  # nothing to write: no-op
    ended = store.finish_message(live.id, "cancelled", "cancelled")
    assert (ended.status, ended.content) == ("cancelled", "")
    assert store.set_content(ended.id, "trimmed").content == "trimmed"
    with pytest.raises(NotFoundError):
        store.get_message(10_000)


def test_a_worker_appends_while_another_thread_reads(store):
    conv = store.create_conversation()
    store.add_message(conv.id, "user", "go")
    reply = store.begin_message(conv.id)

    def worker():
        for i in range(300):
            store.append_text(reply.id, f"{i},")
        store.finish_message(reply.id, "done")

    t = threading.Thread(target=worker)
    t.start()
    seen = []
    while t.is_alive():
        seen.append(store.thread(conv.id)[-1].content)
    t.join()
    expected = "".join(f"{i}," for i in range(300))
    assert all(expected.startswith(s) for s in seen)
    assert store.get_message(reply.id).content == expected


_WRITER = """
import sys
from macapp.core.chat.store import ChatStore
store = ChatStore(sys.argv[1])
conv = store.create_conversation("kill test")
store.add_message(conv.id, "user", "count for me")
reply = store.begin_message(conv.id, model="tiny")
print(conv.id, reply.id, flush=True)
i = 0
while True:
    store.append_text(reply.id, f"<{i}>")
    print(i, flush=True)
    i += 1
"""


@pytest.mark.timeout(30)
def test_kill_9_mid_stream_keeps_every_appended_token(tmp_path):
    path = tmp_path / "chats.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        header = proc.stdout.readline()
        assert header, proc.stderr.read()
        conv_id, reply_id = map(int, header.split())
        for expected in range(50):
            line = proc.stdout.readline()
            assert line.strip() == str(expected), proc.stderr.read()
        with ChatStore(path) as reader:  # another process opening meanwhile leaves a live writer alone
            assert reader.get_message(reply_id).status == "streaming"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)  # reaped: its pid is gone
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    with ChatStore(path) as s:
        thread = s.thread(conv_id)
        assert [m.role for m in thread] == ["user", "assistant"]
        assert thread[0].content == "count for me"
        reply = thread[1]
        assert (reply.id, reply.status, reply.model) == (reply_id, "interrupted", "tiny")
        assert reply.content.startswith("".join(f"<{i}>" for i in range(50)))
        assert s.search("count")[0].message_id == thread[0].id


def test_citations_and_collection_round_trip(tmp_path):
    with ChatStore(tmp_path / "c.sqlite3") as store:
        conv = store.create_conversation()
        assert conv.collection is None
        assert store.update_conversation(conv.id, collection="papers").collection == "papers"
        store.add_message(conv.id, "user", "what does the paper say?")
        reply = store.begin_message(conv.id)
        store.append_text(reply.id, "It says so [paper.pdf, p. 3].")
        cited = [{"number": 1, "file": "paper.pdf", "page": 3}]
        done = store.finish_message(reply.id, citations=cited)
        assert done.citations == cited and store.thread(conv.id)[-1].citations == cited
        assert store.update_conversation(conv.id, collection=None).collection is None


def test_a_history_from_the_first_schema_is_upgraded_in_place(tmp_path):
    import sqlite3

    from macapp.core.database import _statements

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    for statement in _statements(MIGRATIONS[0]):
        db.execute(statement)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
    db.execute("INSERT INTO schema_migrations VALUES (1, 'then')")
    db.execute(
        "INSERT INTO conversations (title, created_at, updated_at) VALUES ('old chat', '2026-01-01T00:00:00',"
        " '2026-01-01T00:00:00')"
    )
    db.commit()
    db.close()
    with ChatStore(path) as store:
        (conv,) = store.list_conversations()
        assert conv.title == "old chat" and conv.collection is None
        store.add_message(conv.id, "user", "still here")
        assert store.thread(conv.id)[0].citations == []
