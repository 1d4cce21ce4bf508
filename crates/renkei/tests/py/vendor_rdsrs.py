"""Real vendor RDSRs (Philips Allura Clarity, Siemens AXIOM-Artis) from the pyskindose wheel
on PyPI (MIT licence), downloaded here and never committed, and what pydicom reads from their
content items: per irradiation event the dose-area product, Dose (RP) and kVp, and the
accumulated totals, converted to Gy·cm² and mGy by this script's own unit table.

    python3 vendor_rdsrs.py OUT_DIR     (prints a JSON list, one entry per file)
"""
import glob
import io
import json
import os
import subprocess
import sys
import zipfile

import pydicom

VERSION = "25.1.1"
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "renkei-tests", "pyskindose")

# To Gy·cm² and to mGy. Siemens writes "Gym2" for Gy.m2.
DAP = {"Gy.m2": 1e4, "Gym2": 1e4, "Gy.cm2": 1.0, "dGy.cm2": 0.1, "cGy.cm2": 0.01, "mGy.cm2": 1e-3}
DOSE = {"Gy": 1000.0, "mGy": 1.0, "dGy": 100.0, "cGy": 10.0}


def wheel():
    found = glob.glob(os.path.join(CACHE, f"pyskindose-{VERSION}-*.whl"))
    if not found:
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", CACHE,
                        f"pyskindose=={VERSION}"], check=True)
        found = glob.glob(os.path.join(CACHE, f"pyskindose-{VERSION}-*.whl"))
    return found[0]


def code(item):
    c = item.ConceptNameCodeSequence[0]
    return (c.CodingSchemeDesignator, c.CodeValue)


def number(item, table):
    measured = item.MeasuredValueSequence[0]
    return float(measured.NumericValue) * table[measured.MeasurementUnitsCodeSequence[0].CodeValue]


def first(items, wanted, table):
    for item in items:
        if code(item) == wanted and item.ValueType == "NUM" and len(item.MeasuredValueSequence):
            return number(item, table)
        if "ContentSequence" in item:
            found = first(item.ContentSequence, wanted, table)
            if found is not None:
                return found
    return None


def main(out):
    os.makedirs(out, exist_ok=True)
    archive = zipfile.ZipFile(wheel())
    result = []
    for name in sorted(n for n in archive.namelist() if "/RDSR/" in n and n.endswith(".dcm")):
        data = archive.read(name)
        path = os.path.join(out, os.path.basename(name))
        with open(path, "wb") as f:
            f.write(data)
        ds = pydicom.dcmread(io.BytesIO(data))
        events = []
        totals = {"dap": 0.0, "dose_rp": 0.0, "fluoro_time": 0.0}
        for item in ds.ContentSequence:
            if code(item) == ("DCM", "113706"):
                uid = next(c.UID for c in item.ContentSequence if code(c) == ("DCM", "113769"))
                events.append({
                    "uid": uid,
                    "dap": first(item.ContentSequence, ("DCM", "122130"), DAP),
                    "dose_rp": first(item.ContentSequence, ("DCM", "113738"), DOSE),
                    "kvp": first(item.ContentSequence, ("DCM", "113733"), {"kV": 1.0}),
                })
            elif code(item) == ("DCM", "113702"):
                totals["dap"] += first(item.ContentSequence, ("DCM", "113722"), DAP) or 0.0
                totals["dose_rp"] += first(item.ContentSequence, ("DCM", "113725"), DOSE) or 0.0
                totals["fluoro_time"] += first(item.ContentSequence, ("DCM", "113730"), {"s": 1.0}) or 0.0
        result.append({"path": path, "study_uid": ds.StudyInstanceUID, "manufacturer": ds.Manufacturer,
                       "events": events, "totals": totals})
    print(json.dumps(result))


main(sys.argv[1])
