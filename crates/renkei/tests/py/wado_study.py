"""WADO-RS study retrieval with dicomweb-client.

usage: wado_study.py BASE_URL TOKEN STUDY_UID
Prints JSON: {"instances": the SOP Instance UIDs retrieved, sorted; "names": the Patient Name
ideographic group of every instance in the study's metadata}.
"""
import json
import sys
import warnings

from dicomweb_client.api import DICOMwebClient

warnings.simplefilter("ignore")
base, token, study = sys.argv[1:4]
client = DICOMwebClient(url=f"{base}/dicom-web", headers={"Authorization": f"Bearer {token}"})
instances = client.retrieve_study(study, media_types=(("application/dicom", "*"),))
metadata = client.retrieve_study_metadata(study)
names = [m["00100010"]["Value"][0].get("Ideographic") for m in metadata]
print(json.dumps({"instances": sorted(str(ds.SOPInstanceUID) for ds in instances), "names": names}, ensure_ascii=False))
