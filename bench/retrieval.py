"""Retrieval quality and speed: hybrid against vector-only and keyword-only, by page, on a generated set.

The corpus is two generated PDFs indexed with the bundled embedder:

- ``topics.pdf``: 30 pages, one subject each (the 14 of tests/core/test_docs_index.py and 16 more). Each page
  has a *paraphrase* question that avoids its key nouns (where vectors should win) and an *exact* question
  naming its rarest terms (where keywords should win);
- ``gazetteer.pdf``: 60 pages about invented towns that differ only in names, years, founders and rivers,
  each with a *fact* question ("Who founded Quellmoor?"): near-identical pages that only the name separates;
  every other town also has a *number* question ("Which town was founded in 1634?"), which vectors can't read.

For every question and mode the top 10 passages are ranked; a hit is a passage whose pages include the
answer page. ``recall5`` is the share of questions with a hit in the top 5, ``mrr`` the mean reciprocal rank
of the first hit (0 past 10). ``query_ms_p50`` is the median wall time of a hybrid ``retrieve.query``,
embedding the question included.

Usage: ``python -m bench.retrieval``; the last line reads ``recall5_hybrid=… recall5_vector=…
recall5_keyword=… mrr_hybrid=… mrr_vector=… mrr_keyword=… query_ms_p50=… questions=…``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

# (heading, text, paraphrase question, exact question)
MORE_TOPICS = [
    (
        "Glaciers",
        "Glaciers form where more snow falls each winter than melts in summer. The snow compacts into "
        "dense blue ice that flows downhill under its own weight, carving U-shaped valleys and leaving moraines of "
        "rubble at its edges.",
        "How do slow rivers of frozen water shape the land?",
        "moraines U-shaped valleys",
    ),
    (
        "Submarines",
        "A submarine dives by flooding its ballast tanks with seawater and surfaces by blowing them "
        "out with compressed air. Periscopes and sonar let the crew see and listen while submerged.",
        "How does an undersea vessel go down and come back up?",
        "ballast tanks periscope sonar",
    ),
    (
        "Origami",
        "Origami is the Japanese art of folding a single square of paper into figures such as the crane. "
        "Traditional models use no cuts or glue; valley and mountain folds are the basic moves.",
        "What is the craft of creasing sheets into animal shapes without scissors?",
        "origami crane",
    ),
    (
        "Tea ceremony",
        "In the Japanese tea ceremony the host prepares matcha, a powdered green tea, whisking it "
        "with a bamboo chasen in front of the guests. Every gesture follows a set choreography.",
        "How is the ritual of serving a whisked green beverage performed in Japan?",
        "matcha chasen",
    ),
    (
        "Cryptography",
        "Public-key cryptography gives each person a key pair: anyone can encrypt with the public "
        "key, but only the private key decrypts. RSA relies on the difficulty of factoring large primes.",
        "How can two strangers exchange secret messages without sharing a password first?",
        "RSA factoring primes",
    ),
    (
        "Wine making",
        "Winemakers crush grapes and let yeast ferment the sugars in the must into alcohol. Red wine "
        "takes its colour from the skins left in during fermentation; it is then aged in oak barrels.",
        "How are vineyard fruits turned into an alcoholic drink?",
        "must fermentation oak barrels",
    ),
    (
        "Tides",
        "Tides are caused mainly by the Moon's gravity pulling on the oceans. Spring tides, with the "
        "largest range, occur at new and full moon, when the Sun and Moon line up.",
        "Why does the sea rise and fall twice a day?",
        "spring tides new moon",
    ),
    (
        "Bicycle gears",
        "A derailleur moves the chain between sprockets of different sizes on the rear cassette. "
        "Low gears make climbing easier; high gears let the rider go faster on the flat.",
        "How does a cyclist make pedalling uphill less tiring?",
        "derailleur cassette sprockets",
    ),
    (
        "Earthquakes",
        "Earthquakes happen when stress builds along a fault until the rocks slip suddenly. The "
        "released energy travels as seismic waves, and the Richter and moment magnitude scales measure its size.",
        "What makes the ground shake violently and how is its strength rated?",
        "Richter seismic waves fault",
    ),
    (
        "Penguins",
        "Emperor penguins breed on Antarctic sea ice in the depth of winter. The male balances the egg "
        "on his feet under a brood pouch for two months while the female feeds at sea.",
        "Which flightless seabird father keeps its young warm through the polar night?",
        "emperor brood pouch",
    ),
    (
        "Printing press",
        "Johannes Gutenberg's printing press combined movable metal type, oil-based ink and a "
        "screw press. Books became cheap enough to spread literacy across Europe.",
        "Which fifteenth-century invention made books affordable for ordinary people?",
        "Gutenberg movable type",
    ),
    (
        "Recycling plastics",
        "Plastics are sorted by resin code, washed, shredded into flakes and melted into "
        "pellets. Only some types, such as PET bottles, are widely recycled.",
        "What happens to drink containers after they go into the collection bin?",
        "PET resin code pellets",
    ),
    (
        "Migraine",
        "A migraine is a throbbing headache often on one side of the head, sometimes preceded by an "
        "aura of flashing lights. Triptans can stop an attack if taken early.",
        "What causes a severe one-sided head pain and how can it be treated?",
        "aura triptans",
    ),
    (
        "Hot-air balloons",
        "A hot-air balloon rises because air heated by a propane burner is less dense than the "
        "cooler air around it. The pilot steers only by changing height to find winds blowing other ways.",
        "How does a lighter-than-air craft with a basket fly and get directed?",
        "propane burner envelope",
    ),
    (
        "Sleep cycles",
        "Sleep runs in cycles of about ninety minutes, moving from light sleep to deep slow-wave "
        "sleep and then REM sleep, when most vivid dreams happen.",
        "What stages does the brain pass through at night?",
        "REM slow-wave",
    ),
    (
        "Bonsai",
        "Bonsai growers keep trees small by pruning roots and branches and wiring limbs into shape. A "
        "juniper or maple can live for centuries in a shallow pot.",
        "How are miniature trees cultivated in containers?",
        "bonsai juniper wiring",
    ),
]
EXACT = {
    "Beekeeping": "honeycomb extractor",
    "Volcanoes": "Mount Fuji tephra",
    "Sourdough baking": "lactobacilli",
    "Chess openings": "Sicilian Defence",
    "Photosynthesis": "chlorophyll chloroplasts",
    "Marathon training": "taper 42.195",
    "Medieval castles": "portcullis gatehouse",
    "Coral reefs": "calcium carbonate polyps",
    "Jazz improvisation": "bebop saxophonist",
    "Income tax": "retirement account deductible",
    "Black holes": "Hawking radiation",
    "Vaccination": "herd immunity",
    "Composting": "earthworms humus",
    "Lighthouses": "Fresnel lens",
}
FIRST = [
    "Ada",
    "Bruno",
    "Clara",
    "Dmitri",
    "Elena",
    "Felix",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Karin",
    "Lars",
    "Mira",
    "Nils",
    "Olga",
    "Pavel",
    "Rosa",
    "Sven",
]
LAST = [
    "Tillson",
    "Varga",
    "Moreau",
    "Lindqvist",
    "Oakes",
    "Brandt",
    "Castell",
    "Doyle",
    "Ekholm",
    "Fairbairn",
    "Grieve",
    "Haldane",
]
SYLLABLES = [
    "var",
    "quel",
    "bram",
    "tor",
    "hal",
    "mer",
    "os",
    "kel",
    "dun",
    "ash",
    "wil",
    "fen",
    "gar",
    "lin",
    "rud",
    "sel",
]
ENDINGS = ["holt", "moor", "wick", "stead", "ford", "by", "ham", "mere", "dale", "gate", "ton", "wyn"]
TRADES = [
    "salmon fishing",
    "wool weaving",
    "copper mining",
    "cider pressing",
    "glass blowing",
    "clock making",
    "cheese making",
    "timber milling",
    "pottery",
    "boat building",
    "paper making",
    "salt panning",
]


def gazetteer(count: int, seed: int = 3) -> list[tuple[str, str, str]]:
    """(page text, question by name, question by founding year) for ``count`` invented towns."""
    rng = random.Random(seed)
    names: set[str] = set()
    while len(names) < count:
        names.add((rng.choice(SYLLABLES) + rng.choice(ENDINGS)).capitalize())
    years = rng.sample(range(1450, 1890), count)  # unique: a year names one town
    out = []
    for i, name in enumerate(sorted(names)):
        founder = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        river = (rng.choice(SYLLABLES) + rng.choice(["a", "en", "is", "ow"])).capitalize()
        year = years[i]
        text = (
            f"# {name}\n{name} is a market town on the river {river}. It was founded in {year} by {founder}, "
            f"and about {rng.randint(2, 90) * 100:,} people live there today. Its main trade is "
            f"{rng.choice(TRADES)}, and a fair is held every {rng.choice(['May', 'June', 'August', 'October'])}."
        )
        question = [
            f"In which year was {name} founded?",
            f"Who founded the town of {name}?",
            f"Which river flows through {name}?",
        ][i % 3]
        out.append((text, question, f"Which town was founded in {year}?"))
    return out


def questions_and_pdfs(folder: Path):
    from tests.core.test_docs_index import TOPICS
    from tests.fixtures.pdfs import make_pdf

    topics = [(h, t, q, EXACT[h]) for h, t, q in TOPICS] + MORE_TOPICS
    make_pdf(folder / "topics.pdf", [f"# {h}\n{t}" for h, t, _, _ in topics])
    towns = gazetteer(60)
    make_pdf(folder / "gazetteer.pdf", [text for text, _, _ in towns])
    questions = []  # (kind, question, file, page)
    for page, (_, _, paraphrase, exact) in enumerate(topics, start=1):
        questions.append(("paraphrase", paraphrase, "topics.pdf", page))
        questions.append(("exact", exact, "topics.pdf", page))
    for page, (_, by_name, by_year) in enumerate(towns, start=1):
        questions.append(("fact", by_name, "gazetteer.pdf", page))
        if page % 2:
            questions.append(("number", by_year, "gazetteer.pdf", page))
    return [folder / "topics.pdf", folder / "gazetteer.pdf"], questions


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MACAPP_HOME"] = str(Path(tmp) / "home")
        from macapp.core.docs import ingest, retrieve
        from macapp.core.docs.embedder import load_embedder
        from macapp.core.docs.index import DocumentIndex

        files, questions = questions_and_pdfs(Path(tmp))
        embedder = load_embedder()
        with DocumentIndex() as index:
            gen = ingest.add_files("Bench", files, embedder, index=index)
            while True:
                try:
                    next(gen)
                except StopIteration as stop:
                    assert all(o.status == "added" for o in stop.value), stop.value
                    break
            retrieve.query("Bench", "warm up", embedder=embedder, index=index)
            ranks: dict[tuple[str, str], list[int | None]] = {}
            timings: dict[str, list[float]] = {mode: [] for mode in retrieve.MODES}
            for kind, question, file, page in questions:
                for mode in retrieve.MODES:
                    start = time.perf_counter()
                    passages = retrieve.query("Bench", question, k=10, mode=mode, embedder=embedder, index=index)
                    timings[mode].append(time.perf_counter() - start)
                    rank = next(
                        (r for r, p in enumerate(passages, start=1) if p.file == file and p.page <= page <= p.page_end),
                        None,
                    )
                    ranks.setdefault((mode, kind), []).append(rank)

    def recall5(found: list[int | None]) -> float:
        return sum(1 for r in found if r and r <= 5) / len(found)

    def mrr(found: list[int | None]) -> float:
        return sum(1 / r for r in found if r) / len(found)

    kinds = ("paraphrase", "exact", "fact", "number")
    print(f"{'mode':8} " + " ".join(f"{k + ' r@5':>14} {k + ' mrr':>14}" for k in kinds) + "   ms p50")
    totals = {}
    for mode in retrieve.MODES:
        every = [r for kind in kinds for r in ranks[(mode, kind)]]
        totals[mode] = (recall5(every), mrr(every))
        print(
            f"{mode:8} "
            + " ".join(f"{recall5(ranks[(mode, k)]):14.3f} {mrr(ranks[(mode, k)]):14.3f}" for k in kinds)
            + f"   {1000 * statistics.median(timings[mode]):.1f}"
        )
    print(
        " ".join(f"recall5_{m}={totals[m][0]:.3f}" for m in retrieve.MODES)
        + " "
        + " ".join(f"mrr_{m}={totals[m][1]:.3f}" for m in retrieve.MODES)
        + f" query_ms_p50={1000 * statistics.median(timings['hybrid']):.1f} questions={len(questions)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
