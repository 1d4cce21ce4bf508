"""WADO-RS study retrieval with dicomweb-client.

usage: wado_study.py BASE_URL TOKEN STUDY_UID
Prints JSON: the SOP Instance UIDs retrieved, sorted.
"""
import json
import sys
import warnings

from dicomweb_client.api import DICOMwebClient

warnings.simplefilter("ignore")
base, token, study = sys.argv[1:4]
client = DICOMwebClient(url=f"{base}/dicom-web", headers={"Authorization": f"Bearer {token}"})
instances = client.retrieve_study(study, media_types=(("application/dicom", "*"),))
print(json.dumps(sorted(str(ds.SOPInstanceUID) for ds in instances)))
