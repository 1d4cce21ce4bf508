"""What a facility sees over DICOMweb, with dicomweb-client: every study QIDO-RS finds, and
for each, the patient of every instance retrieved by WADO-RS and in its metadata.

usage: shared_dicomweb.py BASE_URL TOKEN
Prints JSON: {"studies": [{"uid", "patient_id", "institution"}],
              "retrieved": {uid: [[PatientID, origin PatientID from Other Patient IDs]]},
              "metadata": {uid: [PatientID]}}.
"""
import json
import sys
import warnings

from dicomweb_client.api import DICOMwebClient

warnings.simplefilter("ignore")
base, token = sys.argv[1:3]
client = DICOMwebClient(url=f"{base}/dicom-web", headers={"Authorization": f"Bearer {token}"})


def first(element):
    values = (element or {}).get("Value") or [None]
    return values[0]


found = {"studies": [], "retrieved": {}, "metadata": {}}
for study in client.search_for_studies(fields=["InstitutionName"]):
    uid = first(study.get("0020000D"))
    found["studies"].append(
        {"uid": uid, "patient_id": first(study.get("00100020")), "institution": first(study.get("00080080"))}
    )
    retrieved = []
    for ds in client.retrieve_study(uid, media_types=(("application/dicom", "*"),)):
        others = [str(item.PatientID) for item in ds.get("OtherPatientIDsSequence", [])]
        retrieved.append([str(ds.PatientID), others[0] if others else None])
    found["retrieved"][uid] = retrieved
    found["metadata"][uid] = [first(m.get("00100020")) for m in client.retrieve_study_metadata(uid)]
print(json.dumps(found, ensure_ascii=False))
