"""The document index end to end: real PDFs, the real embedder, real chromadb on disk (a temp dir).

Needs the embedder GGUF that ``make setup`` builds (like test_embedder.py, these tests fail without it).
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from macapp.core.docs import ingest, retrieve
from macapp.core.docs.index import DocumentIndex, EmbedderMismatch, vector_key
from macapp.core.docs.keyword import match_expression
from macapp.core.docs.types import Chunk
from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken, drain
from tests.fixtures import pdfs
from tests.fixtures.ocr import ScriptedOcr

# One topic per page; each question paraphrases its page without the page's key nouns.
TOPICS = [
    (
        "Beekeeping",
        "Honey bees live in colonies ruled by a single queen, with thousands of female workers and a few "
        "drones. Beekeepers puff smoke at the hive entrance to calm the colony before lifting out frames of honeycomb. "
        "The wax cells are uncapped and spun in an extractor to harvest the honey.",
        "How do apiarists stop the stinging insects getting agitated when they collect their sweet product?",
    ),
    (
        "Volcanoes",
        "Magma rises through cracks in the crust and erupts as lava, ash and volcanic gas. Stratovolcanoes "
        "such as Mount Fuji build steep cones from layers of hardened lava and tephra. Pyroclastic flows race down "
        "their slopes at hundreds of kilometres per hour.",
        "What happens when molten rock bursts out of a mountain?",
    ),
    (
        "Sourdough baking",
        "A sourdough starter is a culture of wild yeast and lactobacilli kept in flour and water. "
        "Bakers feed the starter daily and use it to leaven the dough instead of packaged yeast. The long "
        "fermentation gives the loaf its tangy flavour and open crumb. Some enrich the dough with crème fraîche.",
        "How can I get bread to rise without buying a commercial raising agent?",
    ),
    (
        "Chess openings",
        "The Sicilian Defence answers 1.e4 with the c-pawn and leads to sharp, unbalanced positions. "
        "Openings aim to develop the knights and bishops quickly, control the centre and castle the king to safety. "
        "Grandmasters memorise long sequences of opening theory.",
        "What should a player aim for in the first few moves of the board game with rooks and a queen?",
    ),
    (
        "Photosynthesis",
        "Plants capture sunlight with chlorophyll in their chloroplasts. Using that energy they "
        "combine carbon dioxide from the air and water from the soil into glucose, releasing oxygen as a by-product. "
        "This process feeds almost every food chain on Earth.",
        "By what means does foliage convert solar energy into sugar?",
    ),
    (
        "Marathon training",
        "Runners preparing for a marathon build endurance with a weekly long run at an easy pace. "
        "Over months the long run grows towards 32 kilometres, and speed sessions sharpen race pace. In the final "
        "three weeks athletes taper, cutting mileage so their legs are fresh for the 42.195 kilometre race.",
        "How should someone get ready for a long-distance footrace?",
    ),
    (
        "Medieval castles",
        "Medieval castles were defended by thick stone curtain walls, towers and a deep moat. "
        "A drawbridge and portcullis guarded the gatehouse, and archers shot through narrow arrow slits from the "
        "battlements. The keep was the last refuge if the outer walls fell.",
        "How did fortresses of the Middle Ages repel invaders?",
    ),
    (
        "Coral reefs",
        "Coral reefs are built by tiny polyps that secrete skeletons of calcium carbonate. The polyps "
        "host symbiotic algae that give them colour and food. When ocean temperatures rise, the corals expel the "
        "algae and turn white, an event called bleaching.",
        "Why do underwater ecosystems in tropical seas go pale when the sea heats up?",
    ),
    (
        "Jazz improvisation",
        "Jazz musicians improvise melodies over the chord changes of a tune. A saxophonist in a "
        "bebop combo may play fast runs that outline each harmony while the rhythm section keeps the swing feel. "
        "Players learn the language by transcribing solos from records.",
        "How do performers invent tunes on the spot in this American music genre?",
    ),
    (
        "Income tax",
        "Employees pay income tax through withholding from each paycheck. At the end of the year they "
        "file a return, and deductions and credits reduce taxable income. Contributions to a retirement account are "
        "often deductible, which lowers the bill.",
        "How can a worker cut what they owe the government annually?",
    ),
    (
        "Black holes",
        "A black hole forms when a massive star collapses under its own gravity. Inside the event "
        "horizon nothing, not even light, can escape. Stephen Hawking predicted that black holes slowly evaporate "
        "through Hawking radiation.",
        "What kind of object in space swallows everything, including rays of illumination?",
    ),
    (
        "Vaccination",
        "Vaccines train the immune system by exposing it to a weakened, inactivated or partial form of "
        "a pathogen. The body produces antibodies and memory cells, so a later infection is fought off quickly. "
        "Herd immunity protects people who cannot be immunised.",
        "How do injections stop people from catching infectious illnesses?",
    ),
    (
        "Composting",
        "Composting turns kitchen scraps, grass clippings and fallen leaves into humus. Microbes and "
        "earthworms break the material down; turning the pile adds oxygen and speeds decomposition. Finished compost "
        "enriches garden soil with nutrients.",
        "How can food waste become fertile earth for growing vegetables?",
    ),
    (
        "Lighthouses",
        "Lighthouses warn ships away from rocks and reefs along dangerous coasts. A Fresnel lens "
        "focuses the lamp into a powerful beam that can be seen for many kilometres, and each lighthouse flashes in "
        "its own pattern. Keepers once lived on site to tend the light.",
        "How were sailors alerted to hazardous shorelines after dark?",
    ),
]
SPLIT = 7  # pages 1-7 in first.pdf, the rest in second.pdf


def where(topic: int) -> tuple[str, int]:
    """(file, page) of TOPICS[topic]."""
    return ("first.pdf", topic + 1) if topic < SPLIT else ("second.pdf", topic - SPLIT + 1)


def run(gen):
    """Drain a progress generator: (its return value, the items it yielded)."""
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            return stop.value, steps


def pages_of(topics) -> list[str]:
    return [f"# {heading}\n{text}" for heading, text, _ in topics]


class HashEmbedder:
    """Another model as far as the index can tell: hashed bag of words, 256-d."""

    name = "hash-words@test"
    dim = 256
    max_tokens = 256

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2

    def embed(self, texts, cancel=None):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.strip(".,?").encode()) % self.dim] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1)


@pytest.fixture(scope="module")
def embedder():
    from macapp.core.docs.embedder import load_embedder

    return load_embedder()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    pdfs.make_pdf(folder / "first.pdf", pages_of(TOPICS[:SPLIT]))
    pdfs.make_pdf(folder / "second.pdf", pages_of(TOPICS[SPLIT:]))
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, folder, embedder):
    """The 14-topic collection "Topics", indexed once for the read-only tests."""
    index = DocumentIndex(tmp_path_factory.mktemp("corpus-index"))
    outcomes, _ = run(ingest.add_files("Topics", [folder / "first.pdf", folder / "second.pdf"], embedder, index=index))
    assert [o.status for o in outcomes] == ["added", "added"], outcomes
    yield index
    index.close()


@pytest.fixture
def index(tmp_path):
    with DocumentIndex(tmp_path / "index") as index:
        yield index


def stored_counts(index: DocumentIndex, name: str) -> tuple[int, int, int]:
    """(chunks of ready files, chunk rows of any status, vectors in chromadb) of a collection."""
    row = index.collection(name)
    ready = sum(f.chunks for f in index.chunks.files(row.id))
    rows = index.chunks._all(
        "SELECT count(*) FROM chunks c JOIN files f ON f.id = c.file_id WHERE f.collection_id = ?", (row.id,)
    )[0][0]
    return ready, rows, index.vectors.count(row.vector_key)


# ---------------------------------------------------------------- retrieval quality


@pytest.mark.parametrize("mode", ["hybrid", "vector"])
def test_paraphrased_questions_find_their_page_in_the_top_5(corpus, embedder, mode):
    ranks = {}
    for topic, (_, _, question) in enumerate(TOPICS):
        found = [
            (p.file, p.page)
            for p in retrieve.query("Topics", question, k=5, mode=mode, embedder=embedder, index=corpus)
        ]
        ranks[question] = found.index(where(topic)) + 1 if where(topic) in found else None
    assert all(ranks.values()), {q: r for q, r in ranks.items() if not r}
    if mode == "vector":
        assert sum(r == 1 for r in ranks.values()) >= 0.8 * len(TOPICS), ranks


def test_keyword_mode_finds_exact_terms_and_ignores_case_accents_and_syntax(corpus):
    for term, topic in [
        ("Fresnel", 13),
        ("portcullis", 6),
        ("SICILIAN defence", 3),
        ("lactobacilli", 2),
        ("creme fraiche", 2),
        ("Hawking's radiation", 10),
        ("42.195", 5),
    ]:
        passages = retrieve.query("Topics", term, k=3, mode="keyword", index=corpus)
        assert passages and (passages[0].file, passages[0].page) == where(topic), term
        assert passages[0].score > 0
    for hostile in ['"', "NEAR(bees AND", "*", "col:umn OR", "-)"]:
        retrieve.query("Topics", hostile, mode="keyword", index=corpus)  # never an FTS5 syntax error
    assert retrieve.query("Topics", "zebra xylophone", mode="keyword", index=corpus) == []
    assert match_expression("What is the Fresnel lens?") == '"fresnel" OR "lens"'
    assert match_expression("?!") is None


def test_keyword_coverage_is_the_share_of_the_question_a_match_holds(corpus):
    row = corpus.collection("Topics")
    question = "water zebra xylophone unicorn"  # only "water" is in the corpus, on two pages
    incidental = [chunk_id for chunk_id, _ in corpus.chunks.search(row.id, question, 10)]
    assert len(incidental) == 2
    assert all(
        0 < share < retrieve.KEYWORD_MIN_COVERAGE for share in corpus.chunks.coverage(question, incidental).values()
    )
    [(chunk_id, _)] = corpus.chunks.search(row.id, "Fresnel lens", 10)
    assert corpus.chunks.chunks_by_id([chunk_id])[chunk_id].heading == "Lighthouses"
    assert corpus.chunks.coverage("Fresnel lens", [chunk_id]) == {chunk_id: pytest.approx(1.0)}
    half = corpus.chunks.coverage("Fresnel zebra", [chunk_id])[chunk_id]  # "zebra" is in no chunk: the rarest term
    assert 0 < half < 0.5
    assert corpus.chunks.coverage("?!", [chunk_id]) == {chunk_id: 0.0}


def test_fusion_weighs_each_lists_votes():
    vector = [(1, 0.9), (2, 0.8), (3, 0.7)]
    keyword = [(3, 9.0), (4, 5.0), (2, 1.0)]
    assert [i for i, _ in retrieve.fuse([vector, keyword])] == [3, 2, 1, 4]  # agreement wins
    weighed = retrieve.fuse([vector, keyword], weights=[None, {3: 0.0, 4: 1.0, 2: 0.25}])
    assert [i for i, _ in weighed] == [2, 1, 4, 3]  # 3's keyword vote is void, 2's is a quarter
    assert dict(weighed)[3] == pytest.approx(1 / (retrieve.RRF_K + 3))
    assert [i for i, _ in retrieve.fuse([keyword], weights=[{3: 0.0, 4: 0.0, 2: 0.0}])] == []


def test_hybrid_results_are_best_first_and_unique(corpus, embedder):
    passages = retrieve.query("Topics", "Fresnel lens beam", k=10, embedder=embedder, index=corpus)
    assert (passages[0].file, passages[0].page) == where(13)
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)
    assert len({(p.file_hash, p.chunk_index) for p in passages}) == len(passages)
    assert passages[0].text.startswith("Lighthouses") and passages[0].heading == "Lighthouses"


def test_query_errors_are_user_errors(corpus, embedder):
    with pytest.raises(UserError, match="no document collection"):
        retrieve.query("Nope", "bees", index=corpus, embedder=embedder)
    with pytest.raises(UserError, match="empty"):
        retrieve.query("Topics", "   ", index=corpus, embedder=embedder)
    with pytest.raises(UserError):
        retrieve.query("Topics", "bees", k=0, index=corpus, embedder=embedder)


# ---------------------------------------------------------------- bookkeeping


def test_readd_is_a_noop_and_listing_counts(corpus, folder, embedder):
    before = stored_counts(corpus, "Topics")
    outcomes, _ = run(ingest.add_files("topics", [folder / "first.pdf"], embedder, index=corpus))  # any case
    assert outcomes[0].status == "skipped" and "already" in outcomes[0].message
    assert stored_counts(corpus, "Topics") == before
    [info] = ingest.list_collections(index=corpus)
    assert (info.name, len(info.files), info.pages, info.embedder) == ("Topics", 2, len(TOPICS), embedder.name)
    assert info.chunks == before[0] >= len(TOPICS)
    assert info.to_json()["files"][0]["file"] == "first.pdf"


def test_remove_file_removes_its_chunks_everywhere(index, folder, embedder):
    run(ingest.add_files("Mixed", [folder / "first.pdf", folder / "second.pdf"], embedder, index=index))
    ready, rows, vectors = stored_counts(index, "Mixed")
    removed = ingest.remove_file("Mixed", "second.pdf", index=index)
    assert removed.file == "second.pdf"
    assert stored_counts(index, "Mixed") == (ready - removed.chunks,) * 3
    assert retrieve.query("Mixed", "Fresnel", mode="keyword", index=index) == []
    passages = retrieve.query("Mixed", TOPICS[13][2], k=10, embedder=embedder, index=index)
    assert passages and all(p.file == "first.pdf" for p in passages)
    with pytest.raises(UserError, match="not in the collection"):
        ingest.remove_file("Mixed", "second.pdf", index=index)
    by_hash = ingest.list_collections(index=index)[0].files[0].file_hash
    ingest.remove_file("Mixed", by_hash[:12], index=index)
    assert stored_counts(index, "Mixed") == (0, 0, 0)
    ingest.delete_collection("Mixed", index=index)
    assert ingest.list_collections(index=index) == []
    assert not [k for k in index.vectors.names() if k.startswith("docs-")]
    index.vectors.prune_folders(min_age_s=0)  # chromadb leaves the deleted collection's folder behind
    assert not [p for p in (index.root / "chroma").iterdir() if p.is_dir()]


def test_index_persists_across_a_restart(tmp_path, folder, embedder):
    from chromadb.api.shared_system_client import SharedSystemClient

    root = tmp_path / "index"
    question = TOPICS[1][2]
    with DocumentIndex(root) as index:
        run(ingest.add_files("Keep", [folder / "first.pdf"], embedder, index=index))
        before = retrieve.query("Keep", question, embedder=embedder, index=index)
    SharedSystemClient.clear_system_cache()  # chromadb's in-process client cache: as if the app restarted
    with DocumentIndex(root) as index:
        after = retrieve.query("Keep", question, embedder=embedder, index=index)
        assert stored_counts(index, "Keep")[2] == stored_counts(index, "Keep")[0] > 0
        best = retrieve.query("Keep", question, k=1, mode="vector", embedder=embedder, index=index)[0]
    assert [(p.page, p.text, p.score) for p in after] == [(p.page, p.text, p.score) for p in before]
    assert (best.file, best.page) == where(1)


def test_cancel_mid_ingest_leaves_no_partial_file_and_a_rerun_completes(index, folder, embedder):
    token = CancelToken()
    gen = ingest.add_files("Batch", [folder / "first.pdf", folder / "second.pdf"], embedder, token, index=index)
    with pytest.raises(Cancelled):
        for step in gen:
            if step.stage == "embed" and step.file == "second.pdf":
                token.cancel()
    [info] = ingest.list_collections(index=index)
    assert [f.file for f in info.files] == ["first.pdf"]
    assert stored_counts(index, "Batch") == (info.chunks,) * 3  # no rows or vectors of second.pdf
    assert retrieve.query("Batch", "Fresnel", mode="keyword", index=index) == []
    outcomes, _ = run(ingest.add_files("Batch", [folder / "first.pdf", folder / "second.pdf"], embedder, index=index))
    assert [o.status for o in outcomes] == ["skipped", "added"]
    assert retrieve.query("Batch", "Fresnel", mode="keyword", index=index)[0].file == "second.pdf"


def test_abandoned_generator_rolls_back(index, folder, embedder):
    index.ensure_collection("Gone", embedder)  # it exists already (a chat's, or made with New collection…)
    gen = ingest.add_files("Gone", [folder / "first.pdf"], embedder, index=index)
    for step in gen:
        if step.stage == "embed":
            break
    gen.close()  # the GUI dropped the job, or Ctrl-C unwound the CLI
    assert ingest.list_collections(index=index)[0].files == ()
    assert stored_counts(index, "Gone") == (0, 0, 0)


def test_an_add_that_created_its_collection_and_added_nothing_leaves_no_collection(index, folder, embedder, tmp_path):
    gen = ingest.add_files("Fresh", [folder / "first.pdf"], embedder, index=index)
    for step in gen:
        if step.stage == "embed":
            break
    gen.close()  # cancelled during the first file
    bad = tmp_path / "notes.txt"
    bad.write_text("not a PDF")
    _, outcomes = drain(ingest.add_files("Failed", [bad], embedder, index=index))
    assert [o.status for o in outcomes] == ["failed"]  # the one file failed, with its reason
    assert [c.name for c in ingest.list_collections(index=index)] == []  # neither left an empty collection
    assert index.vectors.names() == []
    index.ensure_collection("Kept", embedder)
    drain(ingest.add_files("Kept", [bad], embedder, index=index))
    assert [c.name for c in ingest.list_collections(index=index)] == ["Kept"]  # one the user made stays


def test_a_crashed_writer_is_rolled_back_by_the_next_process(tmp_path, folder, embedder):
    from chromadb.api.shared_system_client import SharedSystemClient

    root = tmp_path / "index"
    with DocumentIndex(root) as index:
        run(ingest.add_files("Crash", [folder / "first.pdf"], embedder, index=index))
        row = index.collection("Crash")
        chunks = [Chunk("second.pdf", "f" * 64, i, 1, 1, f"half written passage {i}") for i in range(3)]
        file_id, ids = index.chunks.add_pending_file(row.id, "f" * 64, "second.pdf", "/x/second.pdf", 1, chunks)
        index.vectors.add(
            row.vector_key, ids[:2], embedder.embed(["a", "b"]), [{"file_hash": "f" * 64, "index": i} for i in range(2)]
        )
        with index.chunks.transaction() as db:  # as if its process was killed
            db.execute("UPDATE files SET writer = '999999999:1.00' WHERE id = ?", (file_id,))
        assert retrieve.query("Crash", "half written passage", mode="keyword", index=index) == []
        stale_key = vector_key("Crash")  # a re-index that died before its swap
        index.vectors.create(stale_key, "Crash", "other", 8)
    SharedSystemClient.clear_system_cache()
    with DocumentIndex(root) as index:
        assert index.vectors.names()  # opening the vectors sweeps
        ready, rows, vectors = stored_counts(index, "Crash")
        assert ready == rows == vectors > 0
        assert stale_key not in index.vectors.names()


def test_a_bad_pdf_is_reported_and_the_rest_are_indexed(index, folder, embedder, tmp_path):
    broken = pdfs.make_corrupt_pdfs(tmp_path / "broken")
    scanned = pdfs.make_image_only_pdf(tmp_path / "scan.pdf")
    paths = [folder / "first.pdf", broken["garbage"], tmp_path / "missing.pdf", scanned, folder / "second.pdf"]
    outcomes, steps = run(ingest.add_files("Batch", paths, embedder, index=index, ocr=ScriptedOcr()))
    assert [o.status for o in outcomes] == ["added", "failed", "failed", "failed", "added"]
    assert [o.kind for o in outcomes[1:4]] == ["corrupt", "unreadable", "no_text"]
    assert all(o.message for o in outcomes[1:4])
    assert [s.outcome for s in steps if s.outcome] == outcomes
    assert [s.done for s in steps] == sorted(s.done for s in steps) and steps[-1].done == steps[-1].total == 5
    assert len(ingest.list_collections(index=index)[0].files) == 2


def test_changed_file_at_the_same_path_replaces_the_old_version(index, embedder, tmp_path):
    path = pdfs.make_pdf(tmp_path / "notes.pdf", pages_of(TOPICS[:2]))
    run(ingest.add_files("Notes", [path], embedder, index=index))
    pdfs.make_pdf(path, pages_of(TOPICS[12:14]))
    outcomes, _ = run(ingest.add_files("Notes", [path], embedder, index=index))
    assert outcomes[0].status == "updated"
    [info] = ingest.list_collections(index=index)
    assert len(info.files) == 1 and stored_counts(index, "Notes") == (info.chunks,) * 3
    assert retrieve.query("Notes", "Stratovolcanoes", mode="keyword", index=index) == []
    assert retrieve.query("Notes", "Fresnel", mode="keyword", index=index)[0].page == 2


def test_a_different_embedder_reindexes_and_vectors_never_mix(index, folder, embedder):
    run(ingest.add_files("Swap", [folder / "first.pdf"], embedder, index=index))
    old_key = index.collection("Swap").vector_key
    other = HashEmbedder()
    with pytest.raises(EmbedderMismatch, match="reindex"):
        retrieve.query("Swap", "bees", embedder=other, index=index)
    assert retrieve.query("Swap", "portcullis", mode="keyword", index=index)  # keyword needs no vectors
    outcomes, steps = run(ingest.add_files("Swap", [folder / "second.pdf"], other, index=index))
    assert outcomes[0].status == "added" and any(s.stage == "reindex" for s in steps)
    row = index.collection("Swap")
    assert (row.embedder, row.dim) == (other.name, other.dim) and row.vector_key != old_key
    assert old_key not in index.vectors.names()
    ready, rows, vectors = stored_counts(index, "Swap")
    assert ready == rows == vectors
    with pytest.raises(EmbedderMismatch):
        retrieve.query("Swap", "bees", embedder=embedder, index=index)
    assert retrieve.query("Swap", "Honey bees colonies queen", mode="vector", embedder=other, index=index)[0].page == 1
    chunks, _ = run(ingest.reindex("Swap", embedder, index=index))  # and back
    assert chunks == ready
    assert (
        retrieve.query("Swap", TOPICS[1][2], mode="vector", embedder=embedder, index=index)[0].file,
        index.collection("Swap").embedder,
    ) == ("first.pdf", embedder.name)


def test_cancelled_reindex_keeps_the_old_vectors(index, folder, embedder):
    run(ingest.add_files("Stay", [folder / "first.pdf"], embedder, index=index))
    before = index.collection("Stay")
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run(ingest.reindex("Stay", HashEmbedder(), token, index=index))
    after = index.collection("Stay")
    assert (after.vector_key, after.embedder, after.next_key) == (before.vector_key, before.embedder, None)
    assert [k for k in index.vectors.names() if k.startswith("docs-")] == [before.vector_key]
    assert retrieve.query("Stay", TOPICS[0][2], embedder=embedder, index=index)


# ---------------------------------------------------------------- context


def test_neighbours_pull_in_adjacent_chunks_without_repeating_the_overlap(index, embedder, tmp_path):
    sentences = [
        f"Sentence number {i} of the long orchard report talks about pruning row {i} of apple trees." for i in range(80)
    ]
    pages = [" ".join(sentences[i : i + 20]) for i in range(0, 80, 20)]
    path = pdfs.make_pdf(tmp_path / "long.pdf", pages)
    run(ingest.add_files("Long", [path], embedder, index=index))
    hit = retrieve.query("Long", "Sentence number 41 of the long orchard report", k=1, mode="keyword", index=index)[0]
    assert hit.chunk_index > 0
    wide = retrieve.query(
        "Long", "Sentence number 41 of the long orchard report", k=1, mode="keyword", neighbours=1, index=index
    )[0]
    assert wide.chunk_index == hit.chunk_index and hit.text in wide.text and len(wide.text) > len(hit.text)
    assert wide.page <= hit.page and wide.page_end >= hit.page_end
    for i in range(80):  # each sentence at most once: the overlap chunks share is not repeated
        assert wide.text.count(f"Sentence number {i} ") <= 1
    together = retrieve.query("Long", "Sentence number 41", k=3, mode="keyword", neighbours=5, index=index)
    assert len(together) == 1  # touching windows of one file become one passage


def test_whole_documents_when_they_fit(index, folder, embedder):
    run(ingest.add_files("Whole", [folder / "first.pdf", folder / "second.pdf"], embedder, index=index))
    passages = retrieve.whole_documents("Whole", embedder.count_tokens, 100_000, index=index)
    assert passages is not None
    assert [(p.file, p.page) for p in passages] == [where(t) for t in range(len(TOPICS))]
    assert all(p.text.startswith(TOPICS[t][0]) for t, p in enumerate(passages))
    assert retrieve.whole_documents("Whole", embedder.count_tokens, 200, index=index) is None


def test_collection_names_are_safe(index, embedder, folder):
    for name in ["Tax 2024 / receipts ✓", "Ünïcode — Δοκιμή", "../../etc", "日本語"]:
        key = vector_key(name)
        assert key.startswith("docs-") and len(key) <= 63 and key[-1].isalnum()
        assert all(ch.isalnum() or ch == "-" for ch in key) and ".." not in key
    run(ingest.add_files("  Tax 2024 / receipts ✓ ", [folder / "first.pdf"], embedder, index=index))
    assert ingest.list_collections(index=index)[0].name == "Tax 2024 / receipts ✓"
    assert retrieve.query("tax 2024 / RECEIPTS ✓", "portcullis", mode="keyword", index=index)
    for bad in ["", "   ", "a\x00b", "x" * 101]:
        with pytest.raises(UserError):
            run(ingest.add_files(bad, [folder / "first.pdf"], embedder, index=index))


def test_importing_the_app_does_not_import_chromadb():
    code = (
        "import sys, macapp.cli.main as m, macapp.core.docs.retrieve, macapp.core.docs.ingest; m.build_parser(); "
        "print('chromadb' in sys.modules, 'llama_cpp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr
