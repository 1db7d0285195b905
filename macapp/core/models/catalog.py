"""The curated model catalog (``models/catalog.toml``): what Orchard offers, and what suits this machine.

Every entry carries the architecture facts the memory estimate needs, so ``recommend`` works
offline, before any GGUF header is read. The sizes there are approximate; the hub refines each
estimate from the real header before a download. With the machine's decode bandwidth, the
recommendation also weighs how fast each model would answer (``speed``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from macapp.core.errors import UserError
from macapp.core.models.estimate import MemoryEstimate, RuntimeSettings, estimate_memory
from macapp.core.models.facts import ModelFacts, sliding_window_layers
from macapp.core.models.quant_names import parse_quant_name
from macapp.core.models.speed import decode_tokens_per_s, is_readable

KINDS = ("chat", "code", "reasoning")
PREFERRED_QUANT = "Q4_K_M"  # every entry must offer it; recommendations start from it
ROOM = 0.75  # a bigger quant is recommended only when it uses at most this share of the budget
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false"}


@dataclass(frozen=True)
class CatalogFile:
    quant: str  # "Q4_K_M"
    file: str  # path of the GGUF inside the repo
    approx_bytes: int


@dataclass(frozen=True)
class CatalogFacts:
    """Architecture facts as the GGUF states them (``head_dim`` = key and value length)."""

    architecture: str
    parameters: int
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    vocab_size: int
    context_length: int
    sliding_window: int = 0
    tied_embeddings: bool = False


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    repo: str
    licence: str
    mlx_repo: str
    family: str
    kind: str  # chat | code | reasoning
    rank: int  # tie-break among equal parameter counts: lower = preferred
    facts: CatalogFacts
    files: tuple[CatalogFile, ...]
    note: str = ""

    def file_for(self, quant: str) -> CatalogFile | None:
        return next((f for f in self.files if f.quant.upper() == quant.upper()), None)


@dataclass(frozen=True)
class Recommendation:
    entry: CatalogEntry
    file: CatalogFile  # the quant to offer on this Mac
    estimate: MemoryEstimate  # of that quant at the requested context
    verdict: str  # fits | tight | too_big (of that quant)
    preferred_verdict: str  # the verdict of the entry's Q4_K_M, which decides the order
    tokens_per_s: float | None = None  # expected decode speed of that quant here (None: bandwidth unknown)

    @property
    def readable(self) -> bool:
        """Answers at a readable pace here (``speed.READABLE_TOKENS_PER_S``), or the speed is unknown."""
        return is_readable(self.tokens_per_s)


def catalog_path() -> Path:
    """The shipped catalog: the repo's ``models/catalog.toml``, else a copy packaged next to this module."""
    from macapp.core.paths import app_root

    candidates = [app_root() / "models" / "catalog.toml", Path(__file__).resolve().with_name("catalog.toml")]
    return next((p for p in candidates if p.is_file()), candidates[0])


def _bad(where: str, problem: str) -> UserError:
    return UserError(f"{where}: {problem}")  # load_catalog() prefixes the file


def _field(raw: dict[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    value = raw.get(key, default)
    if value is None:
        raise _bad(where, f"{key!r} is missing")
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _bad(where, f"{key!r} should be {_TYPE_NAMES[kind]}, not {value!r}")
    if isinstance(value, str) and default is None and not value.strip():
        raise _bad(where, f"{key!r} is empty")
    return value


def _file(raw: Any, where: str) -> CatalogFile:
    if not isinstance(raw, dict):
        raise _bad(where, f"a file should be a table, not {raw!r}")
    name = _field(raw, "file", str, where)
    quant = _field(raw, "quant", str, f"{where}, file {name!r}")
    size = _field(raw, "approx_bytes", int, f"{where}, file {name!r}")
    parsed = parse_quant_name(quant)
    if parsed is None or parsed.name != quant.upper():
        raise _bad(where, f"{quant!r} is not a quantization name")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or name.startswith("~"):
        raise _bad(where, f"file name {name!r} must be a plain path inside the repo")
    if path.suffix.lower() != ".gguf":
        raise _bad(where, f"file name {name!r} is not a .gguf")
    in_name = parse_quant_name(path.name)
    if in_name is None or in_name.name != parsed.name:
        raise _bad(where, f"file name {name!r} does not contain its quant {quant}")
    if size <= 0:
        raise _bad(where, f"file {name!r} has approx_bytes {size}")
    return CatalogFile(quant=parsed.name, file=name, approx_bytes=size)


def _facts(raw: Any, where: str) -> CatalogFacts:
    if not isinstance(raw, dict):
        raise _bad(where, "[model.facts] is missing")
    values: dict[str, Any] = {"architecture": _field(raw, "architecture", str, where)}
    for key in (
        "parameters",
        "n_layer",
        "n_embd",
        "n_ff",
        "n_head",
        "n_head_kv",
        "head_dim",
        "vocab_size",
        "context_length",
    ):
        values[key] = _field(raw, key, int, where)
        if values[key] <= 0:
            raise _bad(where, f"facts.{key} must be positive, not {values[key]}")
    values["sliding_window"] = _field(raw, "sliding_window", int, where, default=0)
    values["tied_embeddings"] = _field(raw, "tied_embeddings", bool, where, default=False)
    if values["n_head"] % values["n_head_kv"] or values["sliding_window"] < 0:
        raise _bad(where, "n_head must be a multiple of n_head_kv and sliding_window at least 0")
    return CatalogFacts(**values)


def _entry(raw: Any, index: int) -> CatalogEntry:
    where = f"model #{index + 1}"
    if not isinstance(raw, dict):
        raise _bad(where, "should be a [[model]] table")
    entry_id = _field(raw, "id", str, where)
    where = f"entry {entry_id!r}"
    if not _ID.fullmatch(entry_id):
        raise _bad(where, "ids are lower case letters, digits, '.', '_' and '-'")
    text = {key: _field(raw, key, str, where) for key in ("name", "repo", "licence", "mlx_repo", "family", "kind")}
    for key in ("repo", "mlx_repo"):
        if not _REPO.fullmatch(text[key]) or ".." in text[key]:
            raise _bad(where, f"{key} {text[key]!r} is not a Hugging Face repo id (org/name)")
    if text["kind"] not in KINDS:
        raise _bad(where, f"kind {text['kind']!r} is not one of {', '.join(KINDS)}")
    files = raw.get("files")
    if not isinstance(files, list) or not files:
        raise _bad(where, "'files' should list at least one GGUF")
    parsed = tuple(_file(f, where) for f in files)
    quants = [f.quant for f in parsed]
    if len(set(quants)) != len(quants):
        raise _bad(where, f"a quant is listed twice ({', '.join(quants)})")
    if PREFERRED_QUANT not in quants:
        raise _bad(where, f"no {PREFERRED_QUANT} file (every entry offers one)")
    return CatalogEntry(
        id=entry_id,
        **text,
        rank=_field(raw, "rank", int, where),
        facts=_facts(raw.get("facts"), where),
        files=parsed,
        note=_field(raw, "note", str, where, ""),
    )


def load_catalog(path: str | Path | None = None) -> list[CatalogEntry]:
    """Read and validate the catalog; raises UserError naming the file and the bad entry."""
    path = Path(path) if path is not None else catalog_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the model catalog {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"the model catalog {path} is not valid TOML: {exc}") from exc
    models = data.get("model")
    if not isinstance(models, list) or not models:
        raise UserError(f"the model catalog {path} lists no [[model]] entries")
    try:
        entries = [_entry(raw, i) for i, raw in enumerate(models)]
        seen: set[str] = set()
        for entry in entries:
            if entry.id in seen:
                raise _bad(f"entry {entry.id!r}", "the id is used twice")
            seen.add(entry.id)
    except UserError as exc:
        raise UserError(f"the model catalog {path}: {exc.message}") from None
    return entries


def _tensor_type(quant: str) -> str:
    """The ggml type holding most weights of a llama.cpp file type (Q4_K_M -> Q4_K)."""
    return re.sub(r"^(Q\d_K)_(S|M|L|XL)$", r"\1", quant)


def facts_for(entry: CatalogEntry, quant: str = PREFERRED_QUANT) -> ModelFacts:
    """ModelFacts from the catalog alone (no header), good enough for ``estimate_memory``."""
    file = entry.file_for(quant)
    if file is None:
        offered = ", ".join(f.quant for f in entry.files)
        raise UserError(f"{entry.name} has no {quant} file in the catalog", hint=f"offered: {offered}")
    f = entry.facts
    meta = {f"{f.architecture}.attention.sliding_window": f.sliding_window} if f.sliding_window else {}
    n_swa, swa_layers = sliding_window_layers(meta, f.architecture, f.n_layer)
    output_params = f.vocab_size * f.n_embd
    embedding_share = min(1.0, output_params * (1 if f.tied_embeddings else 2) / f.parameters)
    layer = int(file.approx_bytes * (1 - embedding_share)) // f.n_layer
    return ModelFacts(
        path=f"hf://{entry.repo}/{file.file}",
        file_name=PurePosixPath(file.file).name,
        file_size=file.approx_bytes,
        architecture=f.architecture,
        name=entry.name,
        parameters=f.parameters,
        vocab_size=f.vocab_size,
        context_length=f.context_length,
        n_layer=f.n_layer,
        n_embd=f.n_embd,
        n_ff=f.n_ff,
        n_head=f.n_head,
        n_head_kv=f.n_head_kv,
        head_dim=f.head_dim,
        key_length=f.head_dim,
        value_length=f.head_dim,
        n_head_kv_per_layer=[f.n_head_kv] * f.n_layer,
        sliding_window=n_swa,
        swa_layers=swa_layers,
        n_expert=0,
        n_expert_used=0,
        quantization=file.quant,
        tensor_types={_tensor_type(file.quant): {"count": 0, "bytes": file.approx_bytes}},
        weights_bytes=file.approx_bytes,
        layer_bytes=[layer] * f.n_layer,
        output_bytes=int(file.approx_bytes * output_params / f.parameters),
        tied_embeddings=f.tied_embeddings,
        has_chat_template=True,
        kind="instruct",
        kind_reason="curated catalog entry",
        tokenizer_model="",
        quant_from_filename=parse_quant_name(file.file),
        warnings=["estimated from the catalog's facts and approximate file size; the GGUF header refines it"],
    )


def _choose(
    entry: CatalogEntry, estimates: dict[str, MemoryEstimate], budget: int, speeds: dict[str, float | None]
) -> CatalogFile:
    """Q4_K_M, or the biggest bigger quant that fits with room to spare (<= ROOM of the budget) and
    still answers at a readable pace, or, when Q4_K_M is too big, the biggest smaller quant that fits."""
    base = entry.file_for(PREFERRED_QUANT)
    assert base is not None  # load_catalog guarantees it
    by_size = sorted(entry.files, key=lambda f: f.approx_bytes, reverse=True)
    for f in by_size:
        est = estimates[f.quant]
        if (
            f.approx_bytes > base.approx_bytes
            and est.verdict == "fits"
            and est.gpu_bytes <= ROOM * budget
            and is_readable(speeds[f.quant])
        ):
            return f
    if estimates[base.quant].verdict != "too_big":
        return base
    smaller = [f for f in by_size if f.approx_bytes < base.approx_bytes and estimates[f.quant].verdict != "too_big"]
    return smaller[0] if smaller else base


def recommend(
    budget_bytes: int,
    backend: str = "metal",
    ctx: int = 8192,
    entries: list[CatalogEntry] | None = None,
    decode_bandwidth: float | None = None,
) -> list[Recommendation]:
    """Every catalog entry with the quant to offer on a machine with ``budget_bytes`` at ``ctx`` tokens.

    Args:
        budget_bytes: what a model may use (``Hardware.budget_bytes``).
        backend: "metal" or "cpu" (``hardware.default_backend()``).
        ctx: the context the memory estimate is for.
        entries: the catalog (default: the shipped one).
        decode_bandwidth: weight bytes a decode reads per second here
            (``hardware.bandwidth.decode_bandwidth``); None to judge by memory alone.

    Order: entries whose Q4_K_M fits well (not merely "tight") and that answer at a readable pace
    first, biggest parameter count first, then ``rank``; then those that fit but answer slowly,
    fastest first; then the ones that only fit tightly (or at a smaller quant); the too-big ones last.
    """
    out = []
    for entry in entries if entries is not None else load_catalog():
        settings = RuntimeSettings(n_ctx=min(ctx, entry.facts.context_length), backend=backend)
        estimates = {f.quant: estimate_memory(facts_for(entry, f.quant), settings, budget_bytes) for f in entry.files}
        speeds = {
            q: decode_tokens_per_s(e.weights_bytes, decode_bandwidth) if decode_bandwidth else None
            for q, e in estimates.items()
        }
        chosen = _choose(entry, estimates, budget_bytes, speeds)
        est = estimates[chosen.quant]
        out.append(
            Recommendation(
                entry,
                chosen,
                est,
                est.verdict or "too_big",
                estimates[PREFERRED_QUANT].verdict or "too_big",
                speeds[chosen.quant],
            )
        )

    def order(r: Recommendation) -> tuple[int, float, int, str]:
        if r.preferred_verdict == "fits":
            if r.readable:
                return 0, -r.entry.facts.parameters, r.entry.rank, r.entry.id
            return 1, -(r.tokens_per_s or 0.0), r.entry.rank, r.entry.id
        return 2 if r.verdict != "too_big" else 3, -r.entry.facts.parameters, r.entry.rank, r.entry.id

    return sorted(out, key=order)


def best_pick(picks: list[Recommendation]) -> Recommendation | None:
    """ "Recommended for this machine": the first of ``recommend()``'s list when its Q4_K_M fits well
    (not merely "tight", not only at a smaller quant); None when no entry's does.

    That is the largest model that fits and answers at a readable pace, or, where none is that fast,
    the fastest one that fits (its expected speed says how slow).
    """
    return picks[0] if picks and picks[0].preferred_verdict == "fits" else None


def matching(entries: list[CatalogEntry], query: str) -> list[CatalogEntry]:
    """The entries whose id, name, repos, family or kind contain every word of ``query`` (any case)."""
    words = query.lower().split()

    def text(e: CatalogEntry) -> str:
        return " ".join((e.id, e.name, e.repo, e.mlx_repo, e.family, e.kind)).lower()

    return [e for e in entries if all(w in text(e) for w in words)]
