"""The Hugging Face Hub: search GGUF repos, list a repo's files by quant, read headers remotely.

Everything goes through ``huggingface_hub`` (its API client, URL helpers, session and error
types). The endpoint is read from ``HF_ENDPOINT`` on every call, not at import, so tests and
users can point Orchard at another Hub-protocol server. Headers are read with HTTP range
requests (a few MB at most, never the weights) and the facts are cached by the file's sha256.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from macapp.core import paths
from macapp.core.errors import UserError
from macapp.core.models.facts import ModelFacts, facts_from_header
from macapp.core.models.gguf_header import GGUFError, read_header
from macapp.core.models.library import split_name
from macapp.core.models.quant_names import QuantName, parse_quant_name

DEFAULT_ENDPOINT = "https://huggingface.co"
HEADER_CHUNK = 64 << 10  # the parser asks for 64 KiB at a time; RemoteSource reads ahead
MAX_REMOTE_HEADER = 64 << 20


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def safe_repo_path(name: str) -> PurePosixPath:
    """A file name from the network as a relative path that cannot leave its folder; UserError if not."""
    if not name or "\\" in name or "\x00" in name:
        raise UserError(f"refusing file name {name!r} from the Hub: not a plain relative path")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", ".", "") for part in name.split("/")) or re.match(r"^[A-Za-z]:", name):
        raise UserError(f"refusing file name {name!r} from the Hub: it would escape the download folder")
    return path


_reachable_until: dict[str, float] = {}


class HubUnreachable(UserError):
    """The Hub cannot be reached at all (offline, DNS, refused, timed out): callers may fall back
    to what works offline, such as the curated catalog."""


def ensure_reachable(timeout: float = 3.0) -> None:
    """Fail in seconds, not after the client's retry back-off (~25 s), when the Hub can't be reached.

    Resolves the endpoint's host and opens a TCP connection; a success is remembered for a minute.
    """
    from urllib.parse import urlsplit

    url = endpoint()
    if _reachable_until.get(url, 0) > time.monotonic():
        return
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "offline?" if isinstance(exc, socket.gaierror) else exc.strerror or type(exc).__name__
        raise HubUnreachable(
            f"cannot reach the Hub at {url} ({reason})", hint="check the network, or set HF_ENDPOINT"
        ) from None
    _reachable_until[url] = time.monotonic() + 60


@contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Turn the client's and the network's exceptions into one-line UserErrors."""
    from huggingface_hub import errors as hf_errors

    ensure_reachable()
    try:
        yield
    except hf_errors.GatedRepoError:  # (a subclass of RepositoryNotFoundError: first)
        raise UserError(f"{what}: this model is gated", hint="accept its licence on the Hub and log in") from None
    except hf_errors.RepositoryNotFoundError:
        raise UserError(f"{what}: no such repository on the Hub (or it is private)") from None
    except (hf_errors.EntryNotFoundError, hf_errors.RevisionNotFoundError):
        raise UserError(f"{what}: no such file or revision on the Hub") from None
    except hf_errors.HFValidationError as exc:
        raise UserError(f"{what}: {exc}") from None
    except hf_errors.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise UserError(f"{what}: the Hub answered HTTP {status}", hint="try again later") from None
    except Exception as exc:
        if is_network_error(exc):
            raise HubUnreachable(f"{what}: cannot reach the Hub at {endpoint()} ({type(exc).__name__})") from None
        raise


def is_network_error(exc: BaseException) -> bool:
    """A connection refused/reset/cut, DNS failure or timeout (socket errors and the HTTP client's)."""
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("httpx2", "httpx", "httpcore")


@dataclass(frozen=True)
class HubModel:
    id: str
    downloads: int
    likes: int
    last_modified: str | None
    gated: bool


def search_models(query: str, limit: int = 20) -> list[HubModel]:
    """GGUF repos on the Hub matching ``query``, most downloaded first."""
    from huggingface_hub import HfApi

    with hub_errors(f"searching for {query!r}"):
        found = HfApi(endpoint=endpoint()).list_models(search=query, filter="gguf", sort="downloads", limit=limit)
        return [
            HubModel(
                m.id,
                int(m.downloads or 0),
                int(m.likes or 0),
                modified.isoformat() if (modified := getattr(m, "last_modified", None)) else None,
                bool(getattr(m, "gated", False)),
            )
            for m in found
        ]


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    sha256: str | None  # the LFS hash the download is verified against


@dataclass
class HubFileGroup:
    """One model in a repo: a single .gguf or all parts of a split one."""

    name: str  # the first part's path
    quant: QuantName | None
    parts: list[HubFile]
    facts: ModelFacts | None = None
    error: str | None = None

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)


@dataclass
class RepoFiles:
    repo_id: str
    revision: str  # the commit the listing is from
    groups: list[HubFileGroup]
    refused: list[str] = field(default_factory=list)  # names that would escape the folder


def list_gguf_files(repo_id: str, revision: str = "main") -> RepoFiles:
    """A repo's GGUF models grouped by quant (split parts as one), with sizes and sha256."""
    from huggingface_hub import HfApi

    with hub_errors(repo_id):
        info = HfApi(endpoint=endpoint()).model_info(repo_id, revision=revision, files_metadata=True)
    files: dict[str, HubFile] = {}
    refused = []
    for sib in info.siblings or []:
        name = sib.rfilename
        if not name.lower().endswith(".gguf"):
            continue
        try:
            safe_repo_path(name)
        except UserError:
            refused.append(name)
            continue
        lfs = sib.lfs
        sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
        size = sib.size if sib.size is not None else (getattr(lfs, "size", 0) if lfs else 0)
        files[name] = HubFile(name, int(size or 0), sha)
    groups: dict[str, HubFileGroup] = {}
    for name in sorted(files):
        split = split_name(PurePosixPath(name).name)
        key = str(PurePosixPath(name).parent / split[0]) if split else name
        group = groups.setdefault(key, HubFileGroup(name, parse_quant_name(PurePosixPath(name).name), []))
        group.parts.append(files[name])
    for group in groups.values():
        split = split_name(PurePosixPath(group.name).name)
        if split and len(group.parts) != split[1]:
            group.error = f"split model is missing parts ({len(group.parts)} of {split[1]} listed)"
    return RepoFiles(repo_id, info.sha or revision, list(groups.values()), refused)


class RemoteSource:
    """A file on the Hub as a ByteSource: HTTP range reads through huggingface_hub's session.

    Reads are served from aligned blocks fetched once (overlapping reads never download the same
    bytes twice). Each request reads ahead twice as far as the one before (256 KiB, 512 KiB, ...
    4 MiB): a small header costs one request, a 256k-token vocabulary a handful.
    """

    BLOCK = 256 << 10
    MAX_READAHEAD_BLOCKS = 16

    def __init__(self, repo_id: str, path: str, revision: str = "main"):
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        safe_repo_path(path)
        self.name = PurePosixPath(path).name
        self.url = hf_hub_url(repo_id, path, revision=revision, endpoint=endpoint())
        with hub_errors(f"{repo_id}/{path}"):
            meta = get_hf_file_metadata(self.url, endpoint=endpoint())
        self.size = int(meta.size or 0)
        self.etag = meta.etag
        self.bytes_fetched = 0
        self._blocks: dict[int, bytes] = {}
        self._readahead = 1  # blocks per request, doubling

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self.size:
            return b""
        end = min(self.size, offset + length)
        first, last = offset // self.BLOCK, (end - 1) // self.BLOCK
        missing = [b for b in range(first, last + 1) if b not in self._blocks]
        while missing:  # fetch each run of consecutive missing blocks with one request
            run = 1
            while run < len(missing) and missing[run] == missing[0] + run:
                run += 1
            n_blocks = -(-self.size // self.BLOCK)
            run = min(max(run, self._readahead), n_blocks - missing[0])
            while run > 1 and missing[0] + run - 1 in self._blocks:
                run -= 1
            self._readahead = min(self._readahead * 2, self.MAX_READAHEAD_BLOCKS)
            start = missing[0] * self.BLOCK
            data = self._fetch(start, min(self.size, (missing[0] + run) * self.BLOCK))
            for i in range(run):
                self._blocks[missing[0] + i] = data[i * self.BLOCK : (i + 1) * self.BLOCK]
            missing = [b for b in missing if b not in self._blocks]
        joined = b"".join(self._blocks[b] for b in range(first, last + 1))
        return joined[offset - first * self.BLOCK : end - first * self.BLOCK]

    def _fetch(self, start: int, stop: int) -> bytes:
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        headers = build_hf_headers() | {"Range": f"bytes={start}-{stop - 1}", "Accept-Encoding": "identity"}
        with hub_errors(self.name):
            response = get_session().get(self.url, headers=headers, follow_redirects=True, timeout=30)
            hf_raise_for_status(response)
        data = response.content
        if response.status_code != 206:  # a server that ignored Range: keep the slice
            data = data[start:stop]
        if len(data) != stop - start:
            raise UserError(f"{self.name}: the Hub sent {len(data)} bytes for a {stop - start}-byte range")
        self.bytes_fetched += len(data)
        return data


class RemoteFactsCache:
    """Facts read from remote headers, keyed by the file's content hash (they never change)."""

    def __init__(self) -> None:
        self.path = paths.cache_dir() / "remote-facts.json"
        try:
            self._data: dict[str, dict[str, Any]] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._data = {}

    def get(self, key: str) -> ModelFacts | None:
        raw = self._data.get(key)
        try:
            return ModelFacts.from_json(raw) if raw else None
        except (TypeError, KeyError):
            return None

    def put(self, key: str, facts: ModelFacts) -> None:
        self._data[key] = facts.to_json()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._data), encoding="utf-8")
        os.replace(tmp, self.path)


def remote_facts(
    repo_id: str, group: HubFileGroup, revision: str = "main", cache: RemoteFactsCache | None = None
) -> ModelFacts:
    """Facts of a model on the Hub from its GGUF header(s), read by range requests and cached."""
    from dataclasses import replace

    cache = cache or RemoteFactsCache()
    key = "+".join(p.sha256 or f"{repo_id}@{revision}/{p.path}" for p in group.parts)
    cached = cache.get(key)
    if cached is not None:
        return cached
    headers = []
    for part in group.parts:
        source = RemoteSource(repo_id, part.path, revision)
        try:
            headers.append(read_header(source, chunk=HEADER_CHUNK, max_header_bytes=MAX_REMOTE_HEADER))
        except GGUFError as exc:
            raise GGUFError(f"{repo_id}/{part.path}: {exc.message}") from None
    first = headers[0]
    merged = replace(first, tensors=[t for h in headers for t in h.tensors], file_size=group.size)
    facts = facts_from_header(merged, f"hf://{repo_id}/{group.name}", PurePosixPath(group.name).name)
    cache.put(key, facts)
    return facts
