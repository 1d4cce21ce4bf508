#!/usr/bin/env python3
"""Query latency of one archive at scale: QIDO-RS (one keep-alive HTTP connection) and C-FIND
(pynetdicom, one association), by PatientID and by name prefix within a date range. Each
timing covers one whole request and its last response; parsing happens after the clock
stops. Prints one JSON line per measurement. bench/scale.sh runs it.

usage: scale.py SYSTEM HTTP_BASE TOKEN DICOM_HOST DICOM_PORT CALLED_AE PATIENTS
  HTTP_BASE  e.g. http://127.0.0.1:8080/dicom-web, or - to skip QIDO-RS
  TOKEN      bearer token, or - for none
"""

import http.client
import json
import logging
import random
import socket
import statistics
import sys
import time
import urllib.parse

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

system, base, token, host, port, called, patients = sys.argv[1:8]
patients = int(patients)
random.seed(7)
logging.getLogger("pynetdicom").setLevel(logging.ERROR)

FAMILY = ["Yamada", "Satou", "Suzuki", "Takahashi", "Tanaka", "Itou", "Watanabe", "Nakamura", "Kobayashi", "Katou"]
GIVEN = ["Tarou", "Hanako", "Ichirou", "Yuki", "Kenji", "Akiko", "Hiroshi", "Keiko"]
N = 1000  # a p99 over 1,000 requests is the 10th slowest, not the 3rd


def report(name, seconds, results):
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, round((len(ms) - 1) * 0.99))]
    print(json.dumps({"system": system, "measure": name, "n": len(ms), "p50_ms": round(statistics.median(ms), 2),
                      "p99_ms": round(p99, 2), "mean_results": round(statistics.mean(results), 1)}), flush=True)


def patient_id():
    return f"BP{random.randrange(patients):07d}"


def name_and_range():
    year, month = random.randrange(2016, 2026), random.randrange(1, 13)
    return f"{random.choice(FAMILY)}^{random.choice(GIVEN)[:2]}*", f"{year}{month:02d}01-{year}{month:02d}28"


if base != "-":
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    headers = {"Accept": "application/dicom+json"}
    if token != "-":
        headers["Authorization"] = f"Bearer {token}"

    def qido(query):
        started = time.perf_counter()
        connection.request("GET", f"{url.path}/studies?{query}", headers=headers)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        assert response.status in (200, 204), (response.status, body[:200])
        return elapsed, len(json.loads(body or b"[]"))

    for name, make in [("qido_patient_id", lambda: urllib.parse.urlencode({"PatientID": patient_id()})),
                       ("qido_name_prefix_date_range",
                        # `^` and `*` unescaped: Orthanc's DICOMweb plugin does not decode %5E in
                        # a QIDO-RS value and then finds no name (renkei reads both forms).
                        lambda: urllib.parse.urlencode(dict(zip(("PatientName", "StudyDate"), name_and_range())),
                                                       safe="^*"))]:
        for _ in range(20):
            qido(make())
        runs = [qido(make()) for _ in range(N)]
        report(name, [s for s, _ in runs], [n for _, n in runs])

ae = AE(ae_title="BENCH")
ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
association = ae.associate(host, int(port), ae_title=called)
assert association.is_established, "association refused"
# pynetdicom writes a request's command and identifier separately: without TCP_NODELAY,
# Nagle's algorithm meets the server's delayed ACK and every C-FIND waits 40 ms.
association.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def cfind(keys):
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = ""
    identifier.PatientName = ""
    identifier.StudyDate = ""
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    started = time.perf_counter()
    matches = sum(1 for status, found in association.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind)
                  if status and status.Status in (0xFF00, 0xFF01))
    return time.perf_counter() - started, matches


def by_name_and_range():
    name, dates = name_and_range()
    return {"PatientName": name, "StudyDate": dates}


for name, make in [("cfind_patient_id", lambda: {"PatientID": patient_id()}),
                   ("cfind_name_prefix_date_range", by_name_and_range)]:
    cfind(make())
    runs = [cfind(make()) for _ in range(N)]
    report(name, [s for s, _ in runs], [n for _, n in runs])
association.release()
