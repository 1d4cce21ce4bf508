#!/usr/bin/env python3
"""Measures one archive's DICOMweb service; bench/dicomweb.sh runs it against renkei and
Orthanc side by side. Standard library only, one keep-alive connection per client, every
response read to its end before the clock stops, and parsed only after it stops (Python's
JSON parser would otherwise be most of what is timed). STOW-RS is sent by
`renkei-testkit stow` (Rust), because four Python threads were the bottleneck. Prints one JSON
line per measurement.

usage: dicomweb.py SYSTEM BASE_URL TOKEN PATIENTS STOW_DIR
  BASE_URL  e.g. http://127.0.0.1:8080/dicom-web (no trailing slash)
  TOKEN     bearer token, or - for none
  PATIENTS  how many index patients (BP0000000…) the archive holds
  STOW_DIR  Part-10 files to store with STOW-RS, split over 4 parallel clients
The TESTKIT environment variable names the renkei-testkit binary.
"""

import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.parse

system, base, token, patients, stow_dir = sys.argv[1:6]
patients = int(patients)
url = urllib.parse.urlsplit(base)
random.seed(42)

FAMILY = ["Yamada", "Satou", "Suzuki", "Takahashi", "Tanaka", "Itou", "Watanabe", "Nakamura", "Kobayashi", "Katou"]
GIVEN = ["Tarou", "Hanako", "Ichirou", "Yuki", "Kenji", "Akiko", "Hiroshi", "Keiko"]
DICOM_PARTS = 'multipart/related; type="application/dicom"'


class Client:
    def __init__(self):
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=300)

    def request(self, method, path, accept, body=None, content_type=None):
        headers = {"Accept": accept}
        if token != "-":
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        self.connection.request(method, url.path + path, body=body, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return data

    def json(self, path):
        return json.loads(self.request("GET", path, "application/dicom+json") or b"[]")


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def report(name, seconds, **extra):
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, round((len(ms) - 1) * 0.99))]
    line = {"system": system, "measure": name, "n": len(ms), "p50_ms": round(statistics.median(ms), 2), "p99_ms": round(p99, 2)}
    print(json.dumps(line | extra), flush=True)


def first(dataset, tag):
    return dataset[tag]["Value"][0]


client = Client()

# The 500-instance CT study and the first of its instances.
studies = client.json("/studies?PatientID=BENCH001&includefield=00201208")
study = next(first(s, "0020000D") for s in studies if int(first(s, "00201208")) == 500)
series = first(client.json(f"/studies/{study}/series")[0], "0020000E")
instance = first(client.json(f"/studies/{study}/series/{series}/instances?limit=1")[0], "00080018")

# QIDO-RS: 300 queries of each kind, warmed by one of each first.
queries = {
    "qido_patient_id": lambda: f"/studies?PatientID=BP{random.randrange(patients):07d}",
    "qido_name_prefix": lambda: f"/studies?PatientName={random.choice(FAMILY)}^{random.choice(GIVEN)[:2]}*",
    "qido_date_range": lambda: "/studies?StudyDate={0}{1:02d}01-{0}{1:02d}28".format(random.randrange(2016, 2026), random.randrange(1, 13)),
}
def get_json(path):
    return client.request("GET", path, "application/dicom+json")


def count(body):
    return len(json.loads(body or b"[]"))


for name, make in queries.items():
    get_json(make())
    results = [timed(lambda: get_json(make())) for _ in range(300)]
    report(name, [s for s, _ in results], mean_results=round(statistics.mean(count(r) for _, r in results), 1))

# Series metadata of the 500-instance study.
path = f"/studies/{study}/series/{series}/metadata"
get_json(path)
results = [timed(lambda: get_json(path)) for _ in range(20)]
assert all(count(r) == 500 for _, r in results), "series metadata lists 500 instances"
report("series_metadata_500", [s for s, _ in results])

# WADO-RS of the whole study, stored syntax. curl reads it: Python's chunked decoding would
# measure the client, not the server.
def curl_download():
    command = ["curl", "-sf", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
               "-H", f"Accept: {DICOM_PARTS}; transfer-syntax=*", f"{base}/studies/{study}"]
    if token != "-":
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    size, seconds = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()
    return int(size), float(seconds)


curl_download()
results = [curl_download() for _ in range(5)]
report("wado_study_500", [s for _, s in results], mb=round(results[0][0] / 1e6, 1),
       mb_per_sec=round(statistics.median(size / s / 1e6 for size, s in results), 1))

# A rendered 512×512 CT frame, as JPEG.
path = f"/studies/{study}/series/{series}/instances/{instance}/rendered"
client = Client()  # Orthanc drops connections idle for a second, as during the downloads.
client.request("GET", path, "image/jpeg")
results = [timed(lambda: client.request("GET", path, "image/jpeg")) for _ in range(50)]
report("rendered_ct_512", [s for s, _ in results])

# STOW-RS: one instance per request, 4 clients in parallel.
files = sorted(os.path.join(stow_dir, f) for f in os.listdir(stow_dir))
command = [os.environ["TESTKIT"], "stow", "--url", f"{base}/studies", "--clients", "4", *files]
if token != "-":
    command[2:2] = ["--token", token]
stowed = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
print(json.dumps({"system": system, "measure": "stow_4_clients", "n": stowed["count"],
                  "p50_ms": stowed["p50_ms"], "p99_ms": stowed["p99_ms"],
                  "instances_per_sec": stowed["instances_per_sec"], "failed": stowed["failed"],
                  "instance_kb": round(os.path.getsize(files[0]) / 1024)}))
