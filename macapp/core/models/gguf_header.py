"""A bounded GGUF header reader that works on a local file or on a byte range of a remote one.

Every count and length in the header is checked against the bytes that can still follow it
(and against hard caps no real model comes near) *before* anything is allocated or looped
over, so a hostile header fails in microseconds with a ``GGUFError`` instead of eating memory.
Large arrays the app does not need (the token list of a 256k vocabulary) are skipped and
kept only as ``ArrayInfo(count)``.

The reader pulls bytes through a ``ByteSource`` (``size`` + ``read(offset, n)``): a local file
here, an HTTP range reader in the hub.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from macapp.core.errors import UserError
from macapp.core.models.ggml_types import GGML_TYPES, tensor_nbytes

MAGIC = b"GGUF"
MAX_TENSORS = 1 << 17  # the largest real models have a few thousand
MAX_KV = 1 << 16  # real files have ~20-60 keys
MAX_KEY_LEN = 1 << 12
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ARRAY_DEPTH = 2
DECODE_NUMERIC_UP_TO = 1 << 16  # numeric arrays longer than this are summarised, not decoded
DECODE_STRINGS_UP_TO = 1 << 10

# GGUF value types: id -> (struct code, size). 8 = string, 9 = array.
_SCALARS = {
    0: ("B", 1),
    1: ("b", 1),
    2: ("H", 2),
    3: ("h", 2),
    4: ("I", 4),
    5: ("i", 4),
    6: ("f", 4),
    7: ("?", 1),
    10: ("Q", 8),
    11: ("q", 8),
    12: ("d", 8),
}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")
_NUMPY_CODES = {
    0: "<u1",
    1: "<i1",
    2: "<u2",
    3: "<i2",
    4: "<u4",
    5: "<i4",
    6: "<f4",
    7: "?",
    10: "<u8",
    11: "<i8",
    12: "<f8",
}


class GGUFError(UserError):
    """The file is not a GGUF the app can use; the message says why, in words."""


class ByteSource(Protocol):
    """Random access to the bytes of a (possibly remote) file."""

    name: str
    size: int

    def read(self, offset: int, length: int) -> bytes: ...


class FileSource:
    """A local file as a ByteSource (positional reads; no mmap, nothing mapped past the header)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.name = self.path.name
        try:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        except FileNotFoundError:
            raise GGUFError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise GGUFError(f"{self.path} is a folder, not a .gguf file") from None
        except OSError as exc:
            raise GGUFError(f"{self.path}: cannot open ({exc.strerror})") from None
        self.size = os.fstat(self._fh.fileno()).st_size

    def read(self, offset: int, length: int) -> bytes:
        self._fh.seek(offset)
        return self._fh.read(length)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ArrayInfo:
    """A metadata array that was too long to decode (we keep its element type and length)."""

    item_type: int
    count: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: ne[0] is the row length
    ggml_type: int
    offset: int  # relative to the data section
    n_elements: int
    n_bytes: int


@dataclass
class GGUFHeader:
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int
    file_size: int
    header_bytes: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @cached_property
    def _by_name(self) -> dict[str, TensorInfo]:
        return {t.name: t for t in self.tensors}

    def tensor(self, name: str) -> TensorInfo | None:
        return self._by_name.get(name)


class _Cursor:
    """Sequential reads over a ByteSource, fetched in chunks, with bounds in words."""

    def __init__(self, source: ByteSource, chunk: int, limit: int):
        self.src, self.chunk, self.limit = source, chunk, min(limit, source.size)
        self.pos = 0
        self._buf = b""
        self._buf_start = 0

    @property
    def remaining(self) -> int:
        return self.source_size - self.pos

    @property
    def source_size(self) -> int:
        return self.src.size

    def fail(self, what: str) -> GGUFError:
        return GGUFError(f"{self.src.name} is not a valid GGUF file: {what}")

    def too_many(self, what: str, count: int, unit: str) -> GGUFError:
        return self.fail(
            f"it is truncated or corrupt ({what} claims {count} {unit}, more than the rest of the file holds)"
        )

    def need(self, n: int, what: str) -> None:
        if n > self.src.size - self.pos:
            raise self.fail(
                f"it is truncated inside the header ({what} at byte {self.pos} needs {n} bytes, "
                f"the file has {self.src.size}) - an incomplete download?"
            )
        if self.pos + n > self.limit:
            raise self.fail(f"its header is larger than {self.limit} bytes")

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        end = self.pos + n
        buf_end = self._buf_start + len(self._buf)
        if not (self._buf_start <= self.pos and end <= buf_end):
            want = max(n, self.chunk)
            self._buf = self.src.read(self.pos, min(want, self.src.size - self.pos))
            self._buf_start = self.pos
            if len(self._buf) < n:
                raise self.fail(f"could not read {what} at byte {self.pos}")
        start = self.pos - self._buf_start
        self.pos = end
        return self._buf[start : start + n]

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n

    def unpack(self, code: str, size: int, what: str) -> Any:
        return struct.unpack("<" + code, self.take(size, what))[0]

    def u32(self, what: str) -> int:
        return self.unpack("I", 4, what)

    def u64(self, what: str) -> int:
        return self.unpack("Q", 8, what)

    def string(self, what: str, max_len: int | None = None) -> str:
        n = self.u64(f"length of {what}")
        if max_len is not None and n > max_len:
            raise self.fail(f"{what} claims {n} bytes (at most {max_len} allowed)")
        self.need(n, what)
        return self.take(n, what).decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str) -> None:
        """Skip ``count`` length-prefixed strings (a vocabulary) in one tight loop over big windows."""
        unpack = _U64.unpack_from
        size, pos = self.src.size, self.pos
        window, start = b"", pos
        for _ in range(count):
            off = pos - start
            if off + 8 > len(window):
                window, start, off = self.src.read(pos, min(size - pos, self.chunk)), pos, 0
                if len(window) < 8:
                    self.pos = pos
                    self.need(8, what)
            pos += 8 + unpack(window, off)[0]
            if pos > size:
                self.pos = size
                raise self.fail(f"it is truncated or corrupt ({what} runs past the end of the file)")
        self.pos = pos
        self.need(0, what)


def _read_value(cur: _Cursor, vtype: int, key: str, depth: int = 0) -> Any:
    if vtype in _SCALARS:
        code, size = _SCALARS[vtype]
        return cur.unpack(code, size, f"value of {key}")
    if vtype == _STRING:
        return cur.string(f"value of {key}")
    if vtype != _ARRAY:
        raise cur.fail(f"key {key!r} has unknown value type {vtype}")
    if depth >= MAX_ARRAY_DEPTH:
        raise cur.fail(f"key {key!r} nests arrays too deeply")
    item_type = cur.u32(f"array type of {key}")
    count = cur.u64(f"array length of {key}")
    if item_type in _SCALARS:
        size = _SCALARS[item_type][1]
        if count > cur.remaining // size:
            raise cur.too_many(f"array {key!r}", count, "items")
        if count > DECODE_NUMERIC_UP_TO:
            cur.skip(count * size, f"array {key}")
            return ArrayInfo(item_type, count)
        import numpy as np

        data = np.frombuffer(cur.take(count * size, f"array {key}"), dtype=_NUMPY_CODES[item_type])
        return data.tolist()
    if item_type == _STRING:
        if count > cur.remaining // 8:
            raise cur.too_many(f"array {key!r}", count, "strings")
        if count > DECODE_STRINGS_UP_TO:
            cur.skip_strings(count, f"array {key}")
            return ArrayInfo(item_type, count)
        return [cur.string(f"item of {key}") for _ in range(count)]
    if item_type == _ARRAY:
        if count > cur.remaining // 12:
            raise cur.too_many(f"array {key!r}", count, "arrays")
        return [_read_value(cur, _ARRAY, key, depth + 1) for _ in range(count)]  # rare
    raise cur.fail(f"array {key!r} has unknown item type {item_type}")


def _check_magic(cur: _Cursor) -> int:
    if cur.src.size == 0:
        raise cur.fail("the file is empty (0 bytes)")
    head = cur.src.read(0, 8)
    if head[:4] != MAGIC:
        if head[:4] in (b"lmgg", b"fmgg", b"tjgg", b"ggml", b"ggmf", b"ggjt"):
            raise cur.fail("it is an old GGML-format model; convert it to GGUF first")
        if head[:4] == b"FUGG":
            raise cur.fail("it is a big-endian GGUF, which Apple Silicon cannot use")
        raise cur.fail(f"it does not start with 'GGUF' (starts with {head[:4]!r})")
    cur.skip(4, "magic")
    version = cur.u32("version")
    if version in (2, 3):
        return version
    if version == 1:
        raise cur.fail("it is GGUF version 1, which llama.cpp no longer reads; re-download it")
    if struct.unpack("<I", struct.pack(">I", version))[0] in (2, 3):
        raise cur.fail("it is a big-endian GGUF, which Apple Silicon cannot use")
    raise cur.fail(f"unsupported GGUF version {version} (this app reads versions 2 and 3)")


def read_header(source: ByteSource, *, chunk: int = 1 << 16, max_header_bytes: int = 1 << 28) -> GGUFHeader:
    """Parse a GGUF header (metadata and tensor index) from ``source``.

    Raises ``GGUFError`` with a readable reason for anything that is not a usable GGUF file,
    including tensors that point past the end of the file (a truncated download).
    """
    cur = _Cursor(source, chunk, max_header_bytes)
    version = _check_magic(cur)
    n_tensors = cur.u64("tensor count")
    n_kv = cur.u64("metadata count")
    if n_tensors > MAX_TENSORS:
        raise cur.fail(f"it claims {n_tensors} tensors, more than any real model has")
    if n_tensors > cur.remaining // 24:
        raise cur.too_many("the header", n_tensors, "tensors")
    if n_kv > MAX_KV:
        raise cur.fail(f"it claims {n_kv} metadata entries, more than any real model has")
    if n_kv > cur.remaining // 13:
        raise cur.too_many("the header", n_kv, "metadata entries")

    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string("metadata key", MAX_KEY_LEN)
        vtype = cur.u32(f"type of {key}")
        metadata[key] = _read_value(cur, vtype, key)

    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1) or alignment > 1 << 16:
        raise cur.fail(f"general.alignment is {alignment!r}, not a power of two")

    tensors = [_read_tensor_info(cur, alignment) for _ in range(n_tensors)]
    header_end = cur.pos
    data_offset = (header_end + alignment - 1) // alignment * alignment
    data_size = source.size - data_offset
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise cur.fail(f"tensor {t.name!r} appears twice")
        seen.add(t.name)
        if t.offset + t.n_bytes > data_size:
            have = source.size / max(1, data_offset + max(x.offset + x.n_bytes for x in tensors))
            raise cur.fail(
                f"it is truncated: tensor {t.name!r} ends past the end of the file "
                f"(the file holds {have:.0%} of the model's data) - an incomplete download?"
            )
    return GGUFHeader(version, metadata, tensors, alignment, data_offset, source.size, header_end)


def _read_tensor_info(cur: _Cursor, alignment: int) -> TensorInfo:
    name = cur.string("tensor name", 1024)
    n_dims = cur.u32(f"dimension count of {name}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise cur.fail(f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
    shape = struct.unpack(f"<{n_dims}Q", cur.take(8 * n_dims, f"shape of {name}"))
    n_elements = 1
    for d in shape:
        if d == 0 or d > 1 << 40:
            raise cur.fail(f"tensor {name!r} has an impossible shape {list(shape)}")
        n_elements *= d
        if n_elements > 1 << 48:
            raise cur.fail(f"tensor {name!r} claims {n_elements}+ elements")
    ggml_type = cur.u32(f"type of {name}")
    info = GGML_TYPES.get(ggml_type)
    if info is None:
        raise cur.fail(f"tensor {name!r} has unknown type {ggml_type} (made by a newer llama.cpp?)")
    if shape[0] % info.block_size:
        raise cur.fail(f"tensor {name!r} row length {shape[0]} is not a multiple of {info.name} blocks")
    offset = cur.u64(f"offset of {name}")
    if offset % alignment:
        raise cur.fail(f"tensor {name!r} is not aligned to {alignment} bytes")
    return TensorInfo(name, tuple(shape), ggml_type, offset, n_elements, tensor_nbytes(ggml_type, n_elements))


def read_header_from_path(path: str | os.PathLike[str]) -> GGUFHeader:
    """Read the header of a local .gguf file."""
    with FileSource(path) as src:
        return read_header(src)
