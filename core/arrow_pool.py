"""Series on Arrow-pool memory, for frames built from numpy without a Python owner.

Memory polars takes over zero-copy from numpy or ``pa.py_buffer`` needs the GIL to be freed, and
polars may free it on one of its pool threads while the main thread holds the GIL and waits on that
pool (pickling a frame does): a deadlock, seen with the simulator's worker at 10M trades. Memory
from Arrow's own pool is freed without the GIL, so the decoder and the simulator build their
columns here.

The arrays reach polars through the Arrow C data interface alone (:func:`series`): zero-copy as
``pl.from_arrow`` is, without the checks and conversions of its pyarrow path, which import
``pyarrow.compute`` (~0.05 s of CPU, once) and check each column on the way.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

#: byte → its two lower-case hex digits as one little-endian uint16 (one gather per byte).
_HEX16 = np.array([ord(f"{b:02x}"[0]) | ord(f"{b:02x}"[1]) << 8 for b in range(256)], dtype="<u2")


def arrow_buffer(nbytes: int) -> tuple[pa.Buffer, np.ndarray]:
    """A buffer from Arrow's memory pool and a writable uint8 view of it (see the module doc)."""
    buf = pa.allocate_buffer(nbytes)
    return buf, np.frombuffer(buf, dtype=np.uint8)


class _Exported:
    """An Arrow array that shows polars only its C data interface (see the module doc)."""

    __slots__ = ("array",)

    def __init__(self, array: pa.Array) -> None:
        self.array = array

    def __arrow_c_array__(self, requested_schema: object = None) -> tuple[object, object]:
        return self.array.__arrow_c_array__(requested_schema)  # type: ignore[no-any-return]


def series(array: pa.Array, name: str = "") -> pl.Series:
    """An Arrow array → a polars Series on the same memory (see the module doc); fixed-size binary
    becomes Binary."""
    return pl.Series(_Exported(array)).alias(name)


def owned_series(values: np.ndarray, name: str = "") -> pl.Series:
    """A 1-d numeric numpy array → a polars Series on a copy in Arrow-pool memory (see the module doc)."""
    values = np.ascontiguousarray(values)
    buf, view = arrow_buffer(values.nbytes)
    view[:] = values.view(np.uint8).ravel()
    return series(pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, buf]), name)


def hex_strings(words: np.ndarray) -> pl.Series:
    """Rows of bytes (n × k uint8) → a String series of "0x" + 2k lower-case hex digits."""
    n, k = words.shape
    width = 2 + 2 * k
    char_buf, flat = arrow_buffer(n * width)
    chars = flat.reshape(n, width)
    chars[:, 0], chars[:, 1] = ord("0"), ord("x")
    chars[:, 2:] = _HEX16[words].view(np.uint8).reshape(n, 2 * k)
    offset_buf, offset_bytes = arrow_buffer(8 * (n + 1))
    offset_bytes.view(np.int64)[:] = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return series(pa.LargeStringArray.from_buffers(n, offset_buf, char_buf))
