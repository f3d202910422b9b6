"""Checkpoints across rank counts: gathers the state blobs of P shards into one unsharded blob
and splits one into Q shards (docs/state-format.md describes the blob; README "Sharded training"
the sharded mode). `lre.core` exports `gather_state` and `split_state`; `python -m lre.shards`
is their command line.

A shard's n-sized buffers (kind "vectors" in `Optimizer.state_layout()`) hold its rows of each
vector; gathering concatenates them in row order, splitting cuts them. Every other buffer is the
k-sized state every rank computes identically, so it must be bit-identical across the shards
(anything else means the ranks fell out of step) and is copied as it is. The spec's
`global_ndim` and `shard_offset` are rewritten; nothing else of it may differ between shards.
Configurations whose buffers are as large as the batch (per-sample corrections) are refused.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import NamedTuple, Sequence, Union

import numpy as np

from .core import LREError, Optimizer, Status

_MAGIC = b"LRESTATE"
# Versions this tool reads (1 had no lent buffers); it writes the newest.
_FORMAT_VERSIONS = (1, 2)
_FORMAT_VERSION = _FORMAT_VERSIONS[-1]
_TAG_END, _TAG_BUFFER, _TAG_LENT = 0, 1, 2
# bf16 and f16 (4, 5) are carried as their bits.
_ELEMENTS = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<u8"), 4: np.dtype("<u2"),
             5: np.dtype("<u2")}
_SHARD_KEYS = re.compile(r"; (global_ndim|shard_offset)=(\d+)")


def _refuse(message: str) -> LREError:
    return LREError(Status.LRE_ERR_STATE, message)


class _Buffer(NamedTuple):
    name: str
    code: int
    data: np.ndarray  # shaped as saved (row-major)


class _Blob(NamedTuple):
    library: str
    spec: str
    n: int
    dtype: int
    buffers: list


class _Reader:
    def __init__(self, data: bytes, what: str):
        self.data, self.at, self.what = data, 0, what

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise _refuse(f"{self.what}: truncated")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        return self.take(self.unpack("I")).decode()


def _parse(data: bytes, what: str) -> _Blob:
    if len(data) < len(_MAGIC) + 4 or data[:len(_MAGIC)] != _MAGIC:
        raise _refuse(f"{what} is not an LRE state blob")
    body, (checksum,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != checksum:
        raise _refuse(f"{what}: checksum mismatch (corrupt or truncated)")
    r = _Reader(body, what)
    r.take(len(_MAGIC))
    version = r.unpack("I")
    if version not in _FORMAT_VERSIONS:
        raise _refuse(f"{what}: state format version {version}; this tool reads versions "
                      f"{_FORMAT_VERSIONS} (save the state with the library this tool ships with)")
    library, spec, n, dtype = r.string(), r.string(), r.unpack("Q"), r.unpack("B")
    buffers = []
    while (tag := r.unpack("B")) != _TAG_END:
        if tag == _TAG_LENT:
            raise _refuse(f"{what} is a small state (its n-sized buffers are caller memory); "
                          "convert it to a full blob first (lre.jax.to_c_state, "
                          "lre_lent_state_save)")
        if tag != _TAG_BUFFER:
            raise _refuse(f"{what}: unknown buffer tag {tag}")
        name, code, rank = r.string(), r.unpack("B"), r.unpack("B")
        if code not in _ELEMENTS:
            raise _refuse(f"{what}: buffer {name} has unknown element type {code}")
        shape = tuple(r.unpack("Q") for _ in range(rank))
        element = _ELEMENTS[code]
        raw = r.take(int(np.prod(shape, dtype=np.uint64)) * element.itemsize)
        buffers.append(_Buffer(name, code, np.frombuffer(raw, element).reshape(shape)))
    if r.at != len(body):
        raise _refuse(f"{what}: bytes after the end tag")
    return _Blob(library, spec, n, dtype, buffers)


def _serialize(blob: _Blob) -> bytes:
    def string(s: str) -> bytes:
        encoded = s.encode()
        return struct.pack("<I", len(encoded)) + encoded

    parts = [_MAGIC, struct.pack("<I", _FORMAT_VERSION), string(blob.library), string(blob.spec),
             struct.pack("<QB", blob.n, blob.dtype)]
    for b in blob.buffers:
        parts += [b"\x01", string(b.name), struct.pack("<BB", b.code, b.data.ndim),
                  struct.pack(f"<{b.data.ndim}Q", *b.data.shape),
                  np.ascontiguousarray(b.data, _ELEMENTS[b.code]).tobytes()]
    body = b"".join(parts) + b"\x00"
    return body + struct.pack("<I", zlib.crc32(body))


def _shard_of(blob: _Blob) -> tuple:
    """(spec without the shard keys, global_ndim, shard_offset)."""
    keys = dict(_SHARD_KEYS.findall(blob.spec))
    base = _SHARD_KEYS.sub("", blob.spec)
    return base, int(keys.get("global_ndim", blob.n)), int(keys.get("shard_offset", 0))


def _vector_buffers(data: bytes, blob: _Blob, what: str) -> set:
    """Names of the blob's n-sized buffers, from the layout its own optimizer declares."""
    layout = Optimizer.from_state(data).state_layout()
    batch_sized = [b.name for b in layout if b.kind == "batch_sized"]
    if batch_sized:
        raise LREError(Status.LRE_ERR_UNSUPPORTED,
                       f"{what}: the buffers {', '.join(batch_sized)} are as large as the batch "
                       "(per-sample corrections); such states cannot be gathered or split")
    vectors = {b.name for b in layout if b.kind in ("vectors", "within")}
    for b in blob.buffers:
        if b.name in vectors and (b.data.ndim != 2 or b.data.shape[1] != blob.n):
            raise _refuse(f"{what}: n-sized buffer {b.name} has shape {b.data.shape}, "
                          f"not [count, {blob.n}]")
    return vectors


def _bytes_of(blob: Union[bytes, bytearray, memoryview]) -> bytes:
    try:
        return bytes(memoryview(blob))
    except TypeError:
        raise TypeError(f"a state blob must be bytes-like, got {type(blob).__name__}") from None


def gather_state(shards: Sequence[Union[bytes, bytearray, memoryview]]) -> bytes:
    """One unsharded state blob from the blobs of all shards of a sharded optimizer (in any
    order; rows `[shard_offset, shard_offset + n)` of each must tile `[0, global_ndim)`). Refused
    (LRE_ERR_STATE, naming what) when the shards' specs differ beyond `shard_offset`, their rows
    leave a gap or overlap, or their k-sized state is not bit-identical."""
    datas = [_bytes_of(s) for s in shards]
    if not datas:
        raise LREError(Status.LRE_ERR_INVALID_ARGUMENT, "gather_state: no shards given")
    blobs = [_parse(d, f"shard {i}") for i, d in enumerate(datas)]
    order = sorted(range(len(blobs)), key=lambda i: (_shard_of(blobs[i])[2], blobs[i].n))
    base, total, _ = _shard_of(blobs[order[0]])
    row = 0
    for i in order:
        spec, global_ndim, offset = _shard_of(blobs[i])
        if spec != base or global_ndim != total:
            raise _refuse(f"shard {i} has the spec {blobs[i].spec!r}, shard {order[0]} "
                          f"{blobs[order[0]].spec!r}: not shards of one optimizer")
        if offset != row:
            raise _refuse(f"shard {i} starts at row {offset}, but the shards before it end at "
                          f"row {row} (a shard is missing or two overlap)")
        row += blobs[i].n
    if row != total:
        raise _refuse(f"the shards hold rows [0, {row}) of global_ndim = {total}: "
                      "a shard is missing")
    first = blobs[order[0]]
    vectors = _vector_buffers(datas[order[0]], first, f"shard {order[0]}")
    names = [b.name for b in first.buffers]
    for i in order:
        if [b.name for b in blobs[i].buffers] != names:
            raise _refuse(f"shard {i} holds the buffers {[b.name for b in blobs[i].buffers]}, "
                          f"shard {order[0]} {names}: the ranks fell out of step")
    gathered = []
    for at, b in enumerate(first.buffers):
        parts = [blobs[i].buffers[at] for i in order]
        if b.name in vectors:
            counts = {p.data.shape[0] for p in parts}
            if len(counts) != 1:
                raise _refuse(f"buffer {b.name} holds {sorted(counts)} vectors on different "
                              "shards: the ranks fell out of step")
            gathered.append(_Buffer(b.name, b.code, np.concatenate([p.data for p in parts], 1)))
            continue
        for i, p in zip(order, parts):
            if p.code != b.code or p.data.shape != b.data.shape or p.data.tobytes() != \
                    b.data.tobytes():
                raise _refuse(f"buffer {b.name} (k-sized state) differs between shard "
                              f"{order[0]} and shard {i}: the ranks fell out of step")
        gathered.append(b)
    return _serialize(_Blob(first.library, base, total, first.dtype, gathered))


def split_state(state: Union[bytes, bytearray, memoryview],
                shards: Union[int, Sequence[int]]) -> list:
    """Splits an unsharded state blob into shards: `shards` is their number Q (rows as even as
    possible, the first ones one longer) or the list of each shard's row count (summing to n;
    zero allowed). Shard q's spec gets `global_ndim = n` and `shard_offset` = the rows before it;
    its n-sized buffers get those rows, every other buffer is copied. Returns Q blobs, each
    loadable with `Optimizer.from_state` on its rank (which then needs `set_allreduce`)."""
    data = _bytes_of(state)
    blob = _parse(data, "the state")
    base, global_ndim, offset = _shard_of(blob)
    if (global_ndim, offset) != (blob.n, 0):
        raise _refuse(f"the state is rows [{offset}, {offset + blob.n}) of {global_ndim}: "
                      "gather the shards into one state first")
    rows = _row_counts(shards, blob.n)
    vectors = _vector_buffers(data, blob, "the state")
    out, start = [], 0
    for count in rows:
        buffers = [_Buffer(b.name, b.code, b.data[:, start:start + count])
                   if b.name in vectors else b for b in blob.buffers]
        spec = f"{base}; global_ndim={blob.n}; shard_offset={start}"
        out.append(_serialize(_Blob(blob.library, spec, count, blob.dtype, buffers)))
        start += count
    return out


def _row_counts(shards: Union[int, Sequence[int]], n: int) -> list:
    if isinstance(shards, (int, np.integer)):
        if shards < 1:
            raise LREError(Status.LRE_ERR_INVALID_ARGUMENT,
                           f"split_state: {shards} shards; at least 1")
        return [n // shards + (q < n % shards) for q in range(shards)]
    rows = [int(r) for r in shards]
    if not rows or min(rows) < 0 or sum(rows) != n:
        raise LREError(Status.LRE_ERR_INVALID_ARGUMENT,
                       f"split_state: row counts {rows} must be non-negative and sum to n = {n}")
    return rows

