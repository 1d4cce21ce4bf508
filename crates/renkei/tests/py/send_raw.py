"""C-STORE Part-10 files byte for byte with pynetdicom (no decoding, no re-encoding).

usage: send_raw.py HOST PORT CALLING_AE CALLED_AE FILE...
Prints one JSON object per file: {"file", "status", "comment"}.
"""
import json
import sys

from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, _config

_config.STORE_SEND_CHUNKED_DATASET = True

host, port, calling, called = sys.argv[1:5]
files = sys.argv[5:]
ae = AE(ae_title=calling)
contexts = []
for path in files:
    meta = read_file_meta_info(path)
    pair = (meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
    if pair not in contexts:
        contexts.append(pair)
for sop_class, syntax in contexts:
    ae.add_requested_context(sop_class, syntax)
assoc = ae.associate(host, int(port), ae_title=called)
if not assoc.is_established:
    print(json.dumps({"error": "association not established"}))
    sys.exit(2)
for path in files:
    status = assoc.send_c_store(path)
    print(json.dumps({
        "file": path,
        "status": int(status.Status) if "Status" in status else None,
        "comment": str(status.ErrorComment) if "ErrorComment" in status else None,
    }))
assoc.release()
