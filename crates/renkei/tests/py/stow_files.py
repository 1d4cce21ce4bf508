"""STOW-RS of DICOM files with dicomweb-client (which reads and re-encodes them with pydicom).

usage: stow_files.py BASE_URL TOKEN FILE...
Prints JSON: {"referenced": n, "failed": n}.
"""
import json
import sys
import warnings

from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread

warnings.simplefilter("ignore")
base, token = sys.argv[1:3]
client = DICOMwebClient(url=f"{base}/dicom-web", headers={"Authorization": f"Bearer {token}"})
response = client.store_instances(datasets=[dcmread(path) for path in sys.argv[3:]])
referenced = len(response.get("ReferencedSOPSequence", []))
failed = len(response.get("FailedSOPSequence", []))
print(json.dumps({"referenced": referenced, "failed": failed}))
