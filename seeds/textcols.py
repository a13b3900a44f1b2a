"""Vectorised text columns for the generator: millions of ids and timestamps without a Python loop.

Fixed-width strings (ISO timestamps, zero-padded or hex ids) are written digit by digit into one
uint8 buffer with numpy and handed to Arrow as a StringArray without copying; variable-width
strings are joined once per person with Arrow compute and then gathered per row with `take`.
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)

# A part of a fixed-width string: literal bytes, or (values, width, base) rendered zero-padded.
Part = Union[bytes, tuple[np.ndarray, int, int]]


def mix64(keys: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64's finaliser over keys XOR salt: a bijection on uint64, so distinct keys stay distinct."""
    with np.errstate(over="ignore"):
        x = keys.astype(np.uint64) ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (x ^ (x >> np.uint64(31))) & _MASK64


def fixed_width(parts: Sequence[Part], n: int, valid: np.ndarray | None = None) -> pa.StringArray:
    """One string per row built from literal and zero-padded numeric parts (base 10 or 16)."""
    widths = [len(p) if isinstance(p, bytes) else p[1] for p in parts]
    total = sum(widths)
    buf = np.empty((n, total), dtype=np.uint8)
    col = 0
    for part, width in zip(parts, widths):
        if isinstance(part, bytes):
            buf[:, col:col + width] = np.frombuffer(part, dtype=np.uint8)
        else:
            values, _, base = part
            v = values.astype(np.uint64, copy=True)
            b = np.uint64(base)
            for j in range(width - 1, -1, -1):
                buf[:, col + j] = _HEX[(v % b).astype(np.intp)]
                v //= b
        col += width
    offsets = np.arange(0, (n + 1) * total, total, dtype=np.int64)
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError("a text column exceeds 2 GiB in one chunk: lower chunk_people")
    bitmap = None
    null_count = 0
    if valid is not None:
        bitmap = pa.py_buffer(np.packbits(valid.astype(bool), bitorder="little"))
        null_count = int(n - np.count_nonzero(valid))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(buf),
                                       bitmap, null_count)


def civil_from_epoch(seconds: np.ndarray) -> tuple[np.ndarray, ...]:
    """(year, month, day, hour, minute, second) of Unix seconds (UTC), vectorised (H. Hinnant's algorithm)."""
    s = seconds.astype(np.int64)
    days, rem = np.divmod(s, 86_400)
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day, rem // 3600, (rem % 3600) // 60, rem % 60


def iso_utc(seconds: np.ndarray, valid: np.ndarray | None = None) -> pa.StringArray:
    """ISO-8601 UTC text `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds."""
    y, mo, d, h, mi, s = civil_from_epoch(seconds)
    return fixed_width([(y, 4, 10), b"-", (mo, 2, 10), b"-", (d, 2, 10), b"T", (h, 2, 10), b":",
                        (mi, 2, 10), b":", (s, 2, 10), b"Z"], len(seconds), valid)


def hex_ids(prefix: str, keys: np.ndarray, salt: int, valid: np.ndarray | None = None) -> pa.StringArray:
    """`prefix` + 16 hex digits of a salted bijective mix of unique integer keys: unique, random-looking."""
    return fixed_width([prefix.encode(), (mix64(keys, salt), 16, 16)], len(keys), valid)


def uuid_like(keys: np.ndarray, salt: int) -> pa.StringArray:
    """8-4-4-4-12 hex text; the first 16 digits are a bijective mix of the key, so unique keys give unique ids."""
    if not len(keys):
        return pa.array([], pa.string())
    a = mix64(keys, salt)
    b = mix64(keys, salt ^ 0x5DEECE66D)
    m16 = np.uint64(0xFFFF)
    return fixed_width([(a >> np.uint64(32), 8, 16), b"-", ((a >> np.uint64(16)) & m16, 4, 16), b"-",
                        (a & m16, 4, 16), b"-", (b >> np.uint64(48), 4, 16), b"-",
                        (b & np.uint64(0xFFFFFFFFFFFF), 12, 16)], len(keys))


def digits(values: np.ndarray, width: int) -> pa.StringArray:
    """Zero-padded decimal text."""
    return fixed_width([(values, width, 10)], len(values))


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and literals (null if any part is null)."""
    return pc.binary_join_element_wise(*parts, "")


def pick(options: pa.Array | Sequence[str | None], index: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """options[index] per row; null where `valid` is False."""
    table = options if isinstance(options, pa.Array) else pa.array(list(options), pa.string())
    idx = pa.array(index.astype(np.int64), mask=None if valid is None else ~valid.astype(bool))
    return table.take(idx)


def nullable_float(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    return pa.array(values.astype(np.float64), mask=~valid.astype(bool))
