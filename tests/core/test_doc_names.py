"""What a person reads for a collection and an embedder (docs.names): no internal ids."""

from __future__ import annotations

from macapp.core.docs.names import collection_title, embedder_name, embedder_names, is_chat_collection, pdf_count


def test_embedder_ids_read_as_their_names_unless_two_share_one():
    assert embedder_name("all-MiniLM-L6-v2@4e2a82406701") == "all-MiniLM-L6-v2"
    assert embedder_name("name@with@signs") == "name@with@signs"  # no file digest: kept whole
    assert embedder_names("a@4e2a82406701", "b@000000000000") == ("a", "b")
    # two files of one model: only the digests tell them apart, so both are shown whole
    assert embedder_names("a@4e2a82406701", "a@000000000000") == ("a@4e2a82406701", "a@000000000000")


def test_a_chats_collection_reads_as_what_it_holds():
    assert [pdf_count(n) for n in (0, 1, 2, 1200)] == ["No PDFs", "1 PDF", "2 PDFs", "1,200 PDFs"]
    assert collection_title("chat-3", 2, "Trip") == "2 PDFs in chat “Trip”"
    assert collection_title("chat-3-2", 1) == "1 PDF from a chat"  # its chat is gone
    assert collection_title("Tax 2026", 4) == collection_title("Tax 2026", 4, None) == "Tax 2026"
    assert is_chat_collection("CHAT-12") and not is_chat_collection("chat-notes")
