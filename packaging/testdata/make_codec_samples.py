"""Write the tiny compressed DICOM files smoke.sh decodes with the frozen engine.

One synthetic 64x48 12-bit MG image (a ramp, no patient data), stored three times with the
lossless transfer syntaxes that need GDCM in the bundle: JPEG Lossless (Process 14 SV1),
JPEG-LS Lossless and JPEG 2000 Lossless. Decoded, the three must be identical, so the frozen
``breast-engine score`` must give the same score for all three.

    .venv/bin/python packaging/testdata/make_codec_samples.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import gdcm
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

OUT = Path(__file__).resolve().parent
SYNTAXES = {
    "jpeg_lossless": gdcm.TransferSyntax.JPEGLosslessProcess14_1,
    "jpeg_ls_lossless": gdcm.TransferSyntax.JPEGLSLossless,
    "jpeg2000_lossless": gdcm.TransferSyntax.JPEG2000Lossless,
}


def main() -> int:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.PatientName = "SYNTHETIC^CODEC"
    ds.Rows, ds.Columns = 64, 48
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(64 * 48).reshape(64, 48) % 4096).astype(np.uint16).tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.dcm"
        ds.save_as(raw, enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(str(raw))
        if not reader.Read():
            raise RuntimeError("gdcm cannot read the uncompressed sample")
        for name, ts in SYNTAXES.items():
            change = gdcm.ImageChangeTransferSyntax()
            change.SetTransferSyntax(gdcm.TransferSyntax(ts))
            change.SetInput(reader.GetImage())
            if not change.Change():
                raise RuntimeError(f"gdcm cannot encode {name}")
            writer = gdcm.ImageWriter()
            writer.SetFile(reader.GetFile())
            writer.SetImage(change.GetOutput())
            writer.SetFileName(str(OUT / f"{name}.dcm"))
            if not writer.Write():
                raise RuntimeError(f"cannot write {name}.dcm")
            print(OUT / f"{name}.dcm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
