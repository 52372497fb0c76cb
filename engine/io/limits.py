"""Size limits checked against image *headers* before any pixel buffer is allocated.

A decompression bomb (a 100-byte PNG whose header claims 60000 x 60000) or a DICOM header
whose Rows/Columns lie must be refused from the header alone: memory stays bounded and no
decoder is ever asked to allocate the claimed size.
"""

from __future__ import annotations

from os import PathLike

from engine.errors import ImageTooLargeError
from engine.io.errors import InvalidDimensionsError

#: Largest number of pixels (rows x columns x frames) accepted by default. A full-field
#: digital mammogram is ~4096 x 3328 = 13.6 M, a 512 x 512 x 400 breast MRI 105 M, a
#: tomosynthesis stack of 70 x 2457 x 1890 is 325 M: 2**29 (537 M) admits all of them.
MAX_PIXELS: int = 2**29

#: Largest decode *peak* (bytes, all frames and samples, the decoder's native buffer plus the
#: Modality-LUT or colour-converted copy) accepted by default: 1.5 GiB, so that opening any
#: file stays under 2 GB of memory. A 512 x 512 x 400 16-bit MR needs 630 MB; a
#: 4096 x 3328 16-bit mammogram 164 MB.
MAX_DECODED_BYTES: int = 3 * 2**29

#: Largest decoded 2-D raster (PNG/JPEG/TIFF/PNM/BMP) accepted by default, colour conversion
#: copy included: 256 MiB (a 16-bit grey 11 585 x 11 585 scan; film digitisers give ~30 MB).
MAX_RASTER_BYTES: int = 2**28

#: Most pages of a multi-page TIFF read as a stack; more are refused before decoding.
MAX_TIFF_PAGES: int = 1024

#: Largest side of a 2-D raster image (PNG/JPEG/TIFF/PNM) accepted by default.
MAX_SIDE: int = 65_535


def check_dimensions(
    path: str | PathLike[str],
    rows: int,
    cols: int,
    *,
    frames: int = 1,
    samples: int = 1,
    bytes_per_sample: int = 1,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_DECODED_BYTES,
) -> int:
    """Refuse impossible or oversized header dimensions; return the decoded size in bytes.

    Args:
        path: File the header came from (named in the error).
        rows: Rows claimed by the header.
        cols: Columns claimed by the header.
        frames: Frames / slices / pages claimed.
        samples: Samples per pixel (1 grey, 3 colour).
        bytes_per_sample: Bytes of one decoded sample.
        max_pixels: Limit on rows x cols x frames.
        max_bytes: Limit on the decoded buffer size.

    Returns:
        rows * cols * frames * samples * bytes_per_sample.

    Raises:
        InvalidDimensionsError: A dimension is zero or negative.
        ImageTooLargeError: A limit is exceeded (nothing was allocated).
    """
    for name, value in (("rows", rows), ("columns", cols), ("frames", frames), ("samples", samples)):
        if value <= 0:
            raise InvalidDimensionsError(path, f"header claims {value} {name}; the image is empty or corrupt")
    pixels = rows * cols * frames
    size = pixels * samples * max(1, bytes_per_sample)
    dims = f"{rows} x {cols}" + (f" x {frames} frames" if frames > 1 else "")
    if pixels > max_pixels:
        raise ImageTooLargeError(
            path, f"header claims {dims} = {pixels:,} pixels, above the {max_pixels:,}-pixel limit "
            "(refused before decoding; possible decompression bomb)"
        )
    if size > max_bytes:
        raise ImageTooLargeError(
            path, f"header claims {dims} needing {size / 2**20:,.0f} MiB, above the "
            f"{max_bytes / 2**20:,.0f} MiB limit (refused before decoding)"
        )
    return size
