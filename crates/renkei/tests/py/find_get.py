"""Study Root C-FIND, then C-GET of every study found, keeping each received data set's raw bytes.

usage: find_get.py HOST PORT CALLING_AE CALLED_AE OUTDIR PATIENT_NAME SOP_CLASS:TS...
Prints JSON: {"studies": [uids], "get_statuses": [..], "received": n}.
Each received data set is written to OUTDIR/<SOPInstanceUID>.raw exactly as it came off the wire.
"""
import json
import os
import sys

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelGet

host, port, calling, called, outdir, name = sys.argv[1:7]
storage = [pair.split(":") for pair in sys.argv[7:]]
received = []


def on_store(event):
    raw = event.request.DataSet.getvalue()
    uid = event.request.AffectedSOPInstanceUID
    with open(os.path.join(outdir, f"{uid}.raw"), "wb") as f:
        f.write(raw)
    received.append(uid)
    return 0x0000


ae = AE(ae_title=calling)
ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
roles = []
for sop_class, syntax in storage:
    ae.add_requested_context(sop_class, syntax)
    if sop_class not in [r.sop_class_uid for r in roles]:
        roles.append(build_role(sop_class, scp_role=True))
assoc = ae.associate(host, int(port), ae_title=called, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
if not assoc.is_established:
    print(json.dumps({"error": "association not established"}))
    sys.exit(2)

query = Dataset()
query.QueryRetrieveLevel = "STUDY"
query.PatientName = name
query.StudyInstanceUID = ""
studies = []
for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
    if status and status.Status in (0xFF00, 0xFF01) and identifier is not None:
        studies.append(str(identifier.StudyInstanceUID))

statuses = []
for study in studies:
    get = Dataset()
    get.QueryRetrieveLevel = "STUDY"
    get.StudyInstanceUID = study
    for status, _ in assoc.send_c_get(get, StudyRootQueryRetrieveInformationModelGet):
        if status and status.Status not in (0xFF00, 0xFF01):
            statuses.append(int(status.Status))
assoc.release()
print(json.dumps({"studies": studies, "get_statuses": statuses, "received": len(received)}))
