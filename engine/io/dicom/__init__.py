"""DICOM reading (pydicom 3): mammography, ultrasound and MR as a reading workstation needs them.

What is handled, following DICOM PS3.3 (C.7.6.3 Image Pixel, C.11 LUTs) and the Digital
Mammography (C.8.11.7), Ultrasound (C.8.5.6) and MR (C.8.3.1) image modules:

* Modality LUT (RescaleSlope/Intercept or ModalityLUTSequence) applied to grey images;
  VOI windows (multi-valued WindowCenter/Width, else a window spanning a VOI LUT) kept in
  ``meta.windows`` in post-Modality-LUT units.
* MONOCHROME1 inverted to MONOCHROME2 (``lo + hi - x`` over the Modality-LUT output range,
  windows mirrored the same way) so every consumer sees "high = bright".
* Colour: RGB, PALETTE COLOR (expanded through its LUT), YBR_FULL / YBR_FULL_422 / YBR_ICT /
  YBR_RCT converted to RGB; multi-frame and big-endian data.
* Compressed transfer syntaxes (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE):
  JPEG 2000 / JPEG-LS / JPEG lossless / baseline through imagecodecs, whose decoders release the
  GIL (a decode in a worker thread never freezes the GUI), else pydicom's decoder plugins
  (python-gdcm, Pillow, pydicom's own RLE; no GPL decoders). A JPEG 2000 image also gives a
  first view from its reduced-resolution levels (:func:`decode_preview`).
* Laterality (ImageLaterality, Laterality, FrameLaterality), view (ViewPosition, else the
  ViewCodeSequence code from CID 4014), pixel spacing (PixelSpacing, ImagerPixelSpacing,
  functional groups, ultrasound regions), presentation intent.
* Identifiers (patient, study/series/SOP UIDs, accession) go to :class:`Identifiers`, never
  into :class:`ImageMeta`.

Bad input is refused *before* the pixel buffer is allocated: rows/columns/frames/samples are
checked against :mod:`engine.io.limits` and, for uncompressed data, against the real length
of PixelData and of the file (headers that lie), each with a specific error naming the file.

Uncompressed grey and RGB data (the 4096 x 3328 16-bit mammogram case) is read with one
``np.fromfile`` at the PixelData offset found while parsing the header, and MONOCHROME1 is
inverted in place: no intermediate ``bytes`` copy.

The package is split along its seams; every name below is importable from ``engine.io.dicom``:

* :mod:`~engine.io.dicom.dataset`: parsing the header, transfer syntax, shared accessors;
* :mod:`~engine.io.dicom.layout`: the Image Pixel module, size/limit/rescale validation;
* :mod:`~engine.io.dicom.meta`: laterality, view, spacing, windows, identifiers;
* :mod:`~engine.io.dicom.codestream`: compressed frames' own headers;
* :mod:`~engine.io.dicom.codecs`: GIL-free decoders and the reduced-resolution preview;
* :mod:`~engine.io.dicom.pixels`: decoding, Modality LUT, MONOCHROME1;
* :mod:`~engine.io.dicom.series`: slice sorting and series stacks;
* :mod:`~engine.io.dicom.image`: :func:`read_dicom`, :func:`probe_dicom`, :func:`decode_preview`.
"""

from engine.io.dicom.codestream import codestream_dims
from engine.io.dicom.dataset import PIXEL_DATA_TAG, header_errors, read_dataset, transfer_syntax
from engine.io.dicom.codecs import gil_free_available
from engine.io.dicom.image import decode_preview, probe_dicom, read_dicom
from engine.io.dicom.layout import MAX_RESCALED, SUPPORTED_PHOTOMETRIC, PixelLayout, check_rescale, pixel_layout
from engine.io.dicom.meta import VIEW_CODES, build_ids, build_meta
from engine.io.dicom.pixels import decode_pixels
from engine.io.dicom.series import read_dicom_series, sort_slices

__all__ = [
    "MAX_RESCALED",
    "PIXEL_DATA_TAG",
    "SUPPORTED_PHOTOMETRIC",
    "VIEW_CODES",
    "PixelLayout",
    "build_ids",
    "build_meta",
    "check_rescale",
    "codestream_dims",
    "decode_pixels",
    "decode_preview",
    "gil_free_available",
    "header_errors",
    "pixel_layout",
    "probe_dicom",
    "read_dataset",
    "read_dicom",
    "read_dicom_series",
    "sort_slices",
    "transfer_syntax",
]
