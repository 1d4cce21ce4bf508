"""Re-encodes a native single-frame grey image as JPEG 2000 lossless (Pillow's OpenJPEG).

usage: j2k_encode.py IN OUT
Everything but the pixel data and the transfer syntax is kept.
"""
import io
import sys

import numpy
import pydicom
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

source, target = sys.argv[1:3]
ds = pydicom.dcmread(source)
pixels = ds.pixel_array
mode = "I;16" if ds.BitsAllocated == 16 else "L"
image = Image.frombytes(mode, (ds.Columns, ds.Rows), pixels.astype(numpy.uint16 if mode == "I;16" else numpy.uint8).tobytes())
codestream = io.BytesIO()
image.save(codestream, format="JPEG2000", no_jp2=True, irreversible=False)
ds.PixelData = encapsulate([codestream.getvalue()])
ds["PixelData"].VR = "OB"
ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
ds.save_as(target, enforce_file_format=True)
