"""Loads libstoke (Stoke's C ABI, Sources/StokeC/include/stoke.h) with ctypes and declares its functions.

The library is found, in order: the path in the STOKE_LIB environment variable; the newest of
.build/release/libstoke-c.so and .build/debug/libstoke-c.so in the Stoke checkout this package lives in
(`swift build --product stoke-c` makes them).
"""
import ctypes
import os
from ctypes import POINTER, c_char_p, c_double, c_int, c_int32, c_int64, c_void_p

import numpy as np

MAX_DIMS = 16
OK = 0
END = 1

# STOKE_DTYPE_* codes, in stoke.h order, as NumPy dtypes (little-endian).
DTYPES = [np.dtype(code) for code in ("u1", "i1", "<u2", "<i2", "<i4", "<i8", "<f2", "<f4", "<f8", "<u4")]
DTYPE_NAMES = ["u8", "i8", "u16", "i16", "i32", "i64", "f16", "f32", "f64", "u32"]


class StokeError(Exception):
    """An error from libstoke: `code` is the STOKE_ERR_* status, `message` the one-line message (the same
    text the `stoke` CLI prints)."""

    CODES = {-1: "argument", -2: "io", -3: "store", -4: "unsupported", -5: "engine", -6: "memory", -7: "internal"}

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def kind(self):
        """'argument', 'io', 'store', 'unsupported', 'engine', 'memory' or 'internal'."""
        return self.CODES.get(self.code, "internal")


def _candidates():
    explicit = os.environ.get("STOKE_LIB")
    if explicit:
        return [explicit]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    found = [os.path.join(root, ".build", kind, "libstoke-c.so") for kind in ("release", "debug")]
    found = [path for path in found if os.path.exists(path)]
    return sorted(found, key=os.path.getmtime, reverse=True)


def _load():
    candidates = _candidates()
    if not candidates:
        raise ImportError(
            "stoke: libstoke-c.so not found: run `swift build --product stoke-c` (or -c release) in the Stoke "
            "checkout, or set STOKE_LIB to the library's path")
    try:
        return ctypes.CDLL(candidates[0]), candidates[0]
    except OSError as error:
        raise ImportError(f"stoke: cannot load {candidates[0]}: {error}") from error


lib, path = _load()

_p = c_void_p
_pp = POINTER(c_void_p)
_i32p = POINTER(c_int32)
_i64p = POINTER(c_int64)
_strp = POINTER(c_char_p)

_signatures = {
    "stoke_last_error": (c_char_p, []),
    "stoke_version": (c_char_p, []),
    "stoke_free_string": (None, [c_void_p]),
    "stoke_store_open": (c_int, [c_char_p, _pp]),
    "stoke_store_samples": (c_int, [_p, _i64p]),
    "stoke_store_field_count": (c_int, [_p, _i32p]),
    "stoke_store_field": (c_int, [_p, c_int32, _strp, _i32p, _i64p, _i32p, _i64p]),
    "stoke_store_attribute": (c_int, [_p, c_char_p, _strp]),
    "stoke_store_close": (None, [_p]),
    "stoke_loader_open": (c_int, [_p, c_char_p, _pp]),
    "stoke_loader_samples": (c_int, [_p, _i64p]),
    "stoke_loader_batch_count": (c_int, [_p, c_int64, _i64p]),
    "stoke_loader_field_count": (c_int, [_p, _i32p]),
    "stoke_loader_field": (c_int, [_p, c_int32, _strp, _i32p, _i32p, _i64p]),
    "stoke_loader_pinning": (c_int, [_p, _i32p, _strp]),
    "stoke_loader_start": (c_int, [_p, c_int64, c_int64]),
    "stoke_loader_next": (c_int, [_p, _pp]),
    "stoke_loader_stop": (c_int, [_p]),
    "stoke_loader_position": (c_int, [_p, _i64p, _i64p]),
    "stoke_loader_state": (c_int, [_p, _pp]),
    "stoke_loader_restore": (c_int, [_p, c_char_p]),
    "stoke_loader_stats": (c_int, [_p, _pp]),
    "stoke_loader_shutdown": (c_int, [_p]),
    "stoke_loader_close": (None, [_p]),
    "stoke_batch_info": (c_int, [_p, _i64p, _i64p]),
    "stoke_batch_field": (c_int, [_p, c_int32, _pp, _i32p, _i32p, _i64p]),
    "stoke_batch_indices": (c_int, [_p, _pp]),
    "stoke_batch_addresses": (c_int, [_p, c_int32, _pp, _i64p]),
    "stoke_batch_release": (None, [_p]),
    "stoke_writer_open": (c_int, [c_char_p, c_char_p, _pp]),
    "stoke_writer_append": (c_int, [_p, c_char_p, c_void_p, c_int64]),
    "stoke_writer_set_metadata": (c_int, [_p, c_char_p, c_char_p]),
    "stoke_writer_finish": (c_int, [_p, _i64p]),
    "stoke_writer_close": (None, [_p]),
    "stoke_pack_files": (c_int, [c_char_p, c_char_p, _i64p]),
    "stoke_session_open": (c_int, [c_char_p, c_int32, _pp]),
    "stoke_session_io": (c_int, [_p, _i32p, _i32p]),
    "stoke_session_input_name": (c_int, [_p, c_int32, _strp]),
    "stoke_session_output_name": (c_int, [_p, c_int32, _strp]),
    "stoke_session_run": (c_int, [_p, c_char_p, c_void_p, c_int32, _i64p, c_char_p, _pp, _i32p, _i64p]),
    "stoke_session_stats": (c_int, [_p, _i64p, POINTER(c_double)]),
    "stoke_session_close": (None, [_p]),
}
for _name, (_result, _arguments) in _signatures.items():
    _function = getattr(lib, _name)
    _function.restype = _result
    _function.argtypes = _arguments


def check(status):
    """Raises StokeError for a negative status; returns the status otherwise (OK or END)."""
    if status < 0:
        raise StokeError(status, lib.stoke_last_error().decode("utf-8", "replace"))
    return status


def encode(text):
    return None if text is None else os.fsencode(text) if isinstance(text, os.PathLike) else str(text).encode("utf-8")


def take_string(pointer):
    """A `char **` result: decodes it and frees it."""
    try:
        return ctypes.string_at(pointer).decode("utf-8")
    finally:
        lib.stoke_free_string(pointer)


def shape_array():
    return (c_int64 * MAX_DIMS)()
