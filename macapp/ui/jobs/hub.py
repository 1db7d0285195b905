"""What the Discover page runs in workers: curated picks, Hub search, a repo's files and their estimates.

Core modules (and huggingface_hub behind them) are imported inside the functions, on the
worker thread, so neither the window's first paint nor the GUI thread waits for them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from macapp.core.errors import UserError

if TYPE_CHECKING:
    from macapp.core.hardware import Hardware
    from macapp.core.hardware.bandwidth import DecodeBandwidth
    from macapp.core.models.catalog import Recommendation
    from macapp.core.models.estimate import MemoryEstimate
    from macapp.core.models.facts import ModelFacts
    from macapp.core.models.hub import HubFileGroup, HubModel, RepoFiles

log = logging.getLogger(__name__)
DISCOVER_CTX = 8192  # estimates on this page are for an 8k-token chat (or the model's own context if shorter)
SEARCH_LIMIT = 40


@dataclass(frozen=True)
class FileEstimate:
    """What one file's remote header says: its facts and memory estimate, or why there are none."""

    name: str  # the group's name (its first part's path)
    facts: ModelFacts | None
    estimate: MemoryEstimate | None
    error: str | None = None
    unusable: bool = False  # the file itself is the problem (not a GGUF, parts missing): not worth downloading


def estimate_at_discover_ctx(facts: ModelFacts, budget: int | None, backend: str) -> MemoryEstimate:
    """The estimate the page shows: 8k tokens of context (fewer if the model is trained on fewer)."""
    from macapp.core.models.estimate import RuntimeSettings, estimate_memory

    n_ctx = max(1, min(DISCOVER_CTX, facts.context_length or DISCOVER_CTX))
    return estimate_memory(facts, RuntimeSettings(n_ctx=n_ctx, backend=backend), budget)


@dataclass(frozen=True)
class CuratedPicks:
    """The curated catalog ordered for a machine, and the decode bandwidth its speeds come from."""

    picks: list[Recommendation]
    bandwidth: DecodeBandwidth


def load_recommendations(hardware: Hardware) -> CuratedPicks:
    """Worker function: the curated catalog ordered for this machine's memory and speed (offline;
    on a machine without Metal the first call measures its memory bandwidth, ~0.3 s, then it is cached)."""
    from macapp.core.hardware.bandwidth import decode_bandwidth
    from macapp.core.models.catalog import recommend

    bandwidth = decode_bandwidth(hardware)
    picks = recommend(
        hardware.budget_bytes, backend=hardware.gpu, ctx=DISCOVER_CTX, decode_bandwidth=bandwidth.bytes_per_s
    )
    return CuratedPicks(picks, bandwidth)


def search_hub(query: str) -> list[HubModel]:
    """Worker function: GGUF repos on the Hub matching ``query``, most downloaded first."""
    from macapp.core.models.hub import search_models

    return search_models(query, SEARCH_LIMIT)


def list_repo_files(repo_id: str) -> RepoFiles:
    """Worker function: a repo's GGUF files grouped by model (split parts together)."""
    from macapp.core.models.hub import list_gguf_files

    return list_gguf_files(repo_id)


def read_remote_estimates(
    repo_id: str, revision: str, groups: list[HubFileGroup], budget: int | None, backend: str
) -> Iterator[FileEstimate]:
    """Worker generator: read each group's GGUF header over HTTP ranges and estimate it, one by one.

    A file that cannot be read yields its reason instead of stopping the others.
    """
    from macapp.core.models.gguf_header import GGUFError
    from macapp.core.models.hub import RemoteFactsCache, remote_facts

    cache = RemoteFactsCache()
    for group in groups:
        if group.error:
            yield FileEstimate(group.name, None, None, group.error, unusable=True)
            continue
        try:
            facts = remote_facts(repo_id, group, revision, cache)
        except UserError as exc:
            yield FileEstimate(group.name, None, None, exc.message, unusable=isinstance(exc, GGUFError))
            continue
        try:
            yield FileEstimate(group.name, facts, estimate_at_discover_ctx(facts, budget, backend))
        except (ValueError, ZeroDivisionError, IndexError):  # odd header values: show the facts without it
            log.exception("cannot estimate %s/%s", repo_id, group.name)
            yield FileEstimate(group.name, facts, None, "cannot estimate its memory from this header")
