"""A reduced-resolution JPEG 2000 decode through OpenJPEG's C API, without holding the GIL.

Pillow's binding (``Image.reduce``) decodes the coarse levels of a mammogram in tens of ms but
holds the GIL meanwhile (130-180 ms of frozen GUI on a loaded machine); imagecodecs releases
the GIL but cannot reduce. The ``libopenjp2`` that imagecodecs (or Pillow) ships is called here
through ctypes, which releases the GIL for every foreign call: ``opj_decode`` at resolution
factor ``r`` (``opj_set_decoded_resolution_factor``) runs while the GUI thread keeps going.

Only the public OpenJPEG 2.x API is used; the decoder-parameter struct is filled by
``opj_set_default_decoder_parameters`` in a buffer larger than it, so its layout is not needed.
The codestream is read from memory (a read callback over the bytes; it takes the GIL only for
the few block copies). When the library cannot be found, :func:`decode_reduced` returns None and
the caller uses Pillow.
"""

from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache
from typing import Any

import numpy as np

_OPJ_CODEC_J2K = 0
_READ = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
_SKIP = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_SEEK = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p)


class _Comp(ctypes.Structure):
    _fields_ = [
        ("dx", ctypes.c_uint32), ("dy", ctypes.c_uint32), ("w", ctypes.c_uint32), ("h", ctypes.c_uint32),
        ("x0", ctypes.c_uint32), ("y0", ctypes.c_uint32), ("prec", ctypes.c_uint32),
        ("bpp", ctypes.c_uint32),  # deprecated in 2.x but still in the struct
        ("sgnd", ctypes.c_uint32), ("resno_decoded", ctypes.c_uint32), ("factor", ctypes.c_uint32),
        ("data", ctypes.POINTER(ctypes.c_int32)), ("alpha", ctypes.c_uint16),
    ]


class _Image(ctypes.Structure):
    _fields_ = [("x0", ctypes.c_uint32), ("y0", ctypes.c_uint32), ("x1", ctypes.c_uint32), ("y1", ctypes.c_uint32),
                ("numcomps", ctypes.c_uint32), ("color_space", ctypes.c_int), ("comps", ctypes.POINTER(_Comp)),
                ("icc_profile_buf", ctypes.c_void_p), ("icc_profile_len", ctypes.c_uint32)]


@lru_cache(maxsize=1)
def _lib() -> Any | None:
    here = []
    for pkg in ("imagecodecs", "PIL"):
        try:
            mod = __import__(pkg)
        except ImportError:
            continue
        site = os.path.dirname(os.path.dirname(os.path.abspath(mod.__file__ or "")))
        here += sorted(glob.glob(os.path.join(site, f"{'pillow' if pkg == 'PIL' else pkg}.libs", "libopenjp2*.so*")))
    for path in here + ["libopenjp2.so.7"]:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        v = ctypes.c_void_p
        lib.opj_create_decompress.restype = v
        lib.opj_create_decompress.argtypes = [ctypes.c_int]
        lib.opj_set_default_decoder_parameters.argtypes = [v]
        lib.opj_setup_decoder.argtypes = [v, v]
        lib.opj_codec_set_threads.argtypes = [v, ctypes.c_int]
        lib.opj_stream_create.restype = v
        lib.opj_stream_create.argtypes = [ctypes.c_size_t, ctypes.c_int32]
        lib.opj_stream_set_read_function.argtypes = [v, _READ]
        lib.opj_stream_set_skip_function.argtypes = [v, _SKIP]
        lib.opj_stream_set_seek_function.argtypes = [v, _SEEK]
        lib.opj_stream_set_user_data_length.argtypes = [v, ctypes.c_uint64]
        lib.opj_read_header.argtypes = [v, v, ctypes.POINTER(ctypes.POINTER(_Image))]
        lib.opj_set_decoded_resolution_factor.argtypes = [v, ctypes.c_uint32]
        lib.opj_decode.argtypes = [v, v, ctypes.POINTER(_Image)]
        lib.opj_end_decompress.argtypes = [v, v]
        lib.opj_image_destroy.argtypes = [ctypes.POINTER(_Image)]
        lib.opj_stream_destroy.argtypes = [v]
        lib.opj_destroy_codec.argtypes = [v]
        return lib
    return None


def available() -> bool:
    """Whether a ``libopenjp2`` was found."""
    return _lib() is not None


def decode_reduced(codestream: bytes, factor: int) -> np.ndarray | None:
    """Decode one grey JPEG 2000 codestream at 1/2^``factor`` of its size, the GIL released.

    Returns:
        ``(ceil(rows / 2^f), ceil(cols / 2^f))`` uint16 (or uint8 / int32 by precision and
        sign), or None when OpenJPEG is unavailable or refuses the data.
    """
    lib = _lib()
    if lib is None:
        return None
    data = memoryview(codestream)
    pos = [0]

    def read(buf: int, n: int, _user: int) -> int:
        if pos[0] >= len(data):
            return ctypes.c_size_t(-1).value
        k = min(n, len(data) - pos[0])
        ctypes.memmove(buf, bytes(data[pos[0]:pos[0] + k]), k)
        pos[0] += k
        return k

    def skip(n: int, _user: int) -> int:
        n = max(-pos[0], min(n, len(data) - pos[0]))
        pos[0] += n
        return n

    def seek(n: int, _user: int) -> int:
        if not 0 <= n <= len(data):
            return 0
        pos[0] = n
        return 1

    read_cb, skip_cb, seek_cb = _READ(read), _SKIP(skip), _SEEK(seek)  # kept alive until the end
    params = ctypes.create_string_buffer(1 << 16)  # > sizeof(opj_dparameters_t) (about 18 kB)
    codec = lib.opj_create_decompress(_OPJ_CODEC_J2K)
    stream = lib.opj_stream_create(max(1 << 20, len(data)), 1)
    image = ctypes.POINTER(_Image)()
    try:
        if not codec or not stream:
            return None
        lib.opj_set_default_decoder_parameters(params)
        lib.opj_stream_set_read_function(stream, read_cb)
        lib.opj_stream_set_skip_function(stream, skip_cb)
        lib.opj_stream_set_seek_function(stream, seek_cb)
        lib.opj_stream_set_user_data_length(stream, len(data))
        lib.opj_codec_set_threads(codec, 1)
        if not (lib.opj_setup_decoder(codec, params) and lib.opj_read_header(stream, codec, ctypes.byref(image))):
            return None
        img = image.contents
        if img.numcomps != 1 or not lib.opj_set_decoded_resolution_factor(codec, int(factor)):
            return None
        if not (lib.opj_decode(codec, stream, image) and lib.opj_end_decompress(codec, stream)):
            return None
        comp = img.comps[0]
        if not comp.data or comp.w == 0 or comp.h == 0:
            return None
        out = np.ctypeslib.as_array(comp.data, shape=(int(comp.h), int(comp.w)))
        dtype = np.int32 if comp.sgnd else (np.uint8 if comp.prec <= 8 else np.uint16)
        return out.astype(dtype)  # a copy: the library's buffer is freed below
    finally:
        if image:
            lib.opj_image_destroy(image)
        if stream:
            lib.opj_stream_destroy(stream)
        if codec:
            lib.opj_destroy_codec(codec)
