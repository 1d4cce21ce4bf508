"""Prints the Patient Name of a DICOM file as pydicom decodes it.

usage: read_name.py FILE
"""
import sys
import warnings

from pydicom import dcmread

warnings.simplefilter("ignore")
print(str(dcmread(sys.argv[1], force=True).PatientName))
