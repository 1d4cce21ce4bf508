"""QIDO-RS study search by patient name with dicomweb-client, a third-party DICOMweb client.

usage: qido_names.py BASE_URL TOKEN PATTERN [fuzzy]
Prints JSON: for every study found, its Patient Name as the DICOM JSON PN object.
"""
import json
import sys

from dicomweb_client.api import DICOMwebClient

base, token, pattern = sys.argv[1:4]
client = DICOMwebClient(url=f"{base}/dicom-web", headers={"Authorization": f"Bearer {token}"})
studies = client.search_for_studies(
    search_filters={"PatientName": pattern},
    fuzzymatching=True if sys.argv[4:] == ["fuzzy"] else None,
)
print(json.dumps([study["00100010"]["Value"][0] for study in studies], ensure_ascii=False, sort_keys=True))
