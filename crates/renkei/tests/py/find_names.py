"""Patient Root C-FIND at PATIENT level with a name pattern in a given character set, with
pynetdicom; pydicom decodes the responses.

usage: find_names.py HOST PORT CALLING_AE CALLED_AE CHARSET PATTERN [fuzzy]
CHARSET is the (0008,0005) value, e.g. '\\ISO 2022 IR 87' (an empty value declares nothing).
With `fuzzy`, fuzzy semantic matching of person names is requested by extended negotiation.
Prints JSON: the decoded PatientName of every match, sorted.
"""
import json
import sys

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from pynetdicom.sop_class import PatientRootQueryRetrieveInformationModelFind

host, port, calling, called, charset, pattern = sys.argv[1:7]
ae = AE(ae_title=calling)
ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
negotiation = []
if sys.argv[7:] == ["fuzzy"]:
    item = SOPClassExtendedNegotiation()
    item.sop_class_uid = PatientRootQueryRetrieveInformationModelFind
    # Relational queries, combined date-time matching: no; fuzzy matching of names: yes.
    item.service_class_application_information = b"\x00\x00\x01"
    negotiation.append(item)
assoc = ae.associate(host, int(port), ae_title=called, ext_neg=negotiation)
if not assoc.is_established:
    print(json.dumps({"error": "association not established"}))
    sys.exit(2)
query = Dataset()
if charset:
    query.SpecificCharacterSet = charset.split("\\")
query.QueryRetrieveLevel = "PATIENT"
query.PatientName = pattern
query.PatientID = ""
names = []
for status, identifier in assoc.send_c_find(query, PatientRootQueryRetrieveInformationModelFind):
    if status and status.Status in (0xFF00, 0xFF01) and identifier is not None:
        names.append(str(identifier.PatientName))
assoc.release()
print(json.dumps(sorted(names), ensure_ascii=False))
