#!/usr/bin/env python3
"""Fills a stopped Orthanc's SQLite index (schema v6, Orthanc 1.10) with synthetic rows in
renkei-testkit's index layout, so that Orthanc can be measured at 1,000,000 instances as
renkei is (bench/scale.sh fills renkei with `renkei-testkit fill-index`). The rows copy what
Orthanc itself writes for an instance received over C-STORE (checked against a real ingest):
the same main DICOM tags and normalized identifiers per level, the same metadata types, an
attachment per instance (but no pixel-data offset, metadata 14, which would not fit the
template below). Orthanc's QIDO-RS reads an instance file per study, so each
attachment is a hard link to TEMPLATE (a small CT slice from `renkei-testkit ct`): the
files are there and parse, but their contents are not the rows' (they serve queries, not
retrieval).

usage: orthanc_fill.py STORAGE_DIR COUNT TEMPLATE [POSTGRES_URL]
STORAGE_DIR holds Orthanc's files, and its SQLite `index` unless POSTGRES_URL names the
database of its PostgreSQL index plugin (4.0: the same tables in lower case, resource types
counted from 0, a revision column, ids from a sequence), which is filled with psql's COPY.
The patients, names, dates and PatientIDs are those of `index_instance(1, n)`, n < COUNT.
"""

import os
import subprocess
import tempfile

import hashlib
import sqlite3
import sys
import time
import unicodedata
import uuid

MASK = (1 << 64) - 1
FAMILY = [("Yamada", "山田", "やまだ"), ("Satou", "佐藤", "さとう"), ("Suzuki", "鈴木", "すずき"),
          ("Takahashi", "高橋", "たかはし"), ("Tanaka", "田中", "たなか"), ("Itou", "伊藤", "いとう"),
          ("Watanabe", "渡邊", "わたなべ"), ("Nakamura", "中村", "なかむら"), ("Kobayashi", "小林", "こばやし"),
          ("Katou", "加藤", "かとう")]
GIVEN = [("Tarou", "太郎", "たろう"), ("Hanako", "花子", "はなこ"), ("Ichirou", "一郎", "いちろう"),
         ("Yuki", "由紀", "ゆき"), ("Kenji", "健二", "けんじ"), ("Akiko", "明子", "あきこ"), ("Hiroshi", "博", "ひろし"),
         ("Keiko", "恵子", "けいこ")]
PATIENT, STUDY, SERIES, INSTANCE = 1, 2, 3, 4


def splitmix(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def public_id(*parts):
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()
    return "-".join(digest[i:i + 8] for i in range(0, 40, 8))


def normalized(value):
    """Orthanc's identifier normalization: ASCII only, upper case."""
    ascii_only = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return ascii_only.upper()


class Sqlite:
    """Orthanc's own SQLite index."""

    type_offset = 0

    def __init__(self, storage):
        self.db = sqlite3.connect(os.path.join(storage, "index"))
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.execute("PRAGMA journal_mode = MEMORY")

    def query(self, sql):
        return self.db.execute(sql).fetchall()

    def insert(self, table, rows):
        if rows:
            self.db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)

    def finish(self, _next_id):
        self.db.commit()


class Postgres:
    """The PostgreSQL index plugin's database, written through psql."""

    type_offset = -1
    revision = {"Metadata": True, "AttachedFiles": True}

    def __init__(self, url):
        self.url = url
        self.dir = tempfile.mkdtemp(prefix="orthanc-fill-")
        self.files = {}

    def psql(self, *args, **kwargs):
        return subprocess.run(["psql", "-At", "-v", "ON_ERROR_STOP=1", self.url, *args], check=True,
                              capture_output=True, text=True, **kwargs).stdout

    def query(self, sql):
        return [tuple(line.split("|")) for line in self.psql("-c", sql).splitlines() if line]

    def insert(self, table, rows):
        if table not in self.files:
            self.files[table] = open(os.path.join(self.dir, table), "w")
        out = self.files[table]
        for row in rows:
            if table in self.revision:
                row = row + (0,)
            out.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")

    def finish(self, next_id):
        # The plugin's row triggers keep counters in single globalintegers rows: a million
        # updates of one row in one transaction grow quadratically. They are off during the
        # COPY, and the counters and recycling order are set once afterwards.
        script = ["ALTER TABLE resources DISABLE TRIGGER USER", "ALTER TABLE attachedfiles DISABLE TRIGGER USER"]
        for table, out in self.files.items():
            out.close()
            script.append(f"\\copy {table.lower()} FROM '{out.name}'")
        script += [
            "ALTER TABLE resources ENABLE TRIGGER USER",
            "ALTER TABLE attachedfiles ENABLE TRIGGER USER",
            f"SELECT setval('resources_internalid_seq', {next_id})",
            "UPDATE globalintegers SET value = (SELECT COALESCE(SUM(compressedsize), 0) FROM attachedfiles) WHERE key = 0",
            "UPDATE globalintegers SET value = (SELECT COALESCE(SUM(uncompressedsize), 0) FROM attachedfiles) WHERE key = 1",
            *(f"UPDATE globalintegers SET value = (SELECT COUNT(*) FROM resources WHERE resourcetype = {kind}) "
              f"WHERE key = {kind + 2}" for kind in range(4)),
            "INSERT INTO patientrecyclingorder (patientid) SELECT internalid FROM resources r WHERE resourcetype = 0 "
            "AND NOT EXISTS (SELECT 1 FROM patientrecyclingorder o WHERE o.patientid = r.internalid)",
        ]
        self.psql("-c", "BEGIN", *sum((["-c", line] for line in script), []), "-c", "COMMIT")


def main():
    storage, count, template = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    db = Postgres(sys.argv[4]) if len(sys.argv) > 4 else Sqlite(storage)
    size = os.path.getsize(template)
    with open(template, "rb") as f:
        md5 = hashlib.md5(f.read()).hexdigest()
    made_dirs, links = set(), [0, None]

    def attach(file_uuid):
        """Hard-links the template as the attachment (ext4 allows 65,000 links an inode)."""
        if links[1] is None or links[0] >= 60000:
            links[1] = os.path.join(storage, f"template-{next_id}")
            with open(template, "rb") as source, open(links[1], "wb") as copy:
                copy.write(source.read())
            links[0] = 0
        directory = os.path.join(storage, file_uuid[:2], file_uuid[2:4])
        if directory not in made_dirs:
            os.makedirs(directory, exist_ok=True)
            made_dirs.add(directory)
        os.link(links[1], os.path.join(directory, file_uuid))
        links[0] += 1
    next_id = int(db.query("SELECT COALESCE(MAX(internalId), 0) FROM Resources")[0][0]) + 1
    started = time.time()
    resources, main_tags, identifiers, metadata, files = [], [], [], [], []
    now = time.strftime("%Y%m%dT%H%M%S")

    def flush():
        db.insert("Resources", [(i, kind + db.type_offset, p, parent) for i, kind, p, parent in resources])
        db.insert("MainDicomTags", main_tags)
        db.insert("DicomIdentifiers", identifiers)
        db.insert("Metadata", metadata)
        db.insert("AttachedFiles", files)
        for rows in (resources, main_tags, identifiers, metadata, files):
            rows.clear()

    # Patients Orthanc already holds (from C-STORE before the fill) are reused, by public id.
    patient_type = 1 + db.type_offset
    existing = {p: int(i) for p, i in db.query(f"SELECT publicId, internalId FROM Resources WHERE resourceType = {patient_type}")}
    patient_ids = {}
    for study in range(count // 100 + (1 if count % 100 else 0)):
        patient = study // 2
        family = FAMILY[splitmix(patient) % 10]
        given = GIVEN[splitmix(patient ^ 0xF00D) % 8]
        days = splitmix(study ^ 0xDA7E) % 3650
        year, day_of_year = 2016 + days // 365, days % 365
        study_date = f"{year}{day_of_year // 31 % 12 + 1:02d}{day_of_year % 28 + 1:02d}"
        pid = f"BP{patient:07d}"
        name = f"{family[0]}^{given[0]}={family[1]}^{given[1]}={family[2]}^{given[2]}"
        birth = f"19{30 + patient % 60:02d}0{1 + patient % 9}1{patient % 10}"
        sex = "M" if patient % 2 == 0 else "F"
        patient_tags = [(0x10, 0x10, name), (0x10, 0x20, pid), (0x10, 0x30, birth), (0x10, 0x40, sex)]
        patient_idents = [(0x10, 0x20, pid), (0x10, 0x10, normalized(name)), (0x10, 0x30, birth)]
        if pid not in patient_ids and public_id(pid) in existing:
            patient_ids[pid] = existing[public_id(pid)]
        if pid not in patient_ids:
            patient_ids[pid] = next_id
            resources.append((next_id, PATIENT, public_id(pid), None))
            main_tags.extend((next_id, g, e, v) for g, e, v in patient_tags)
            identifiers.extend((next_id, g, e, v) for g, e, v in patient_idents)
            metadata.append((next_id, 7, now))
            next_id += 1
        study_uid, series_uid = f"2.25.{splitmix(study ^ 0x57D1)}", f"2.25.{splitmix(study ^ 0x5E71)}"
        study_id = next_id
        resources.append((study_id, STUDY, public_id(pid, study_uid), patient_ids[pid]))
        accession = f"A{study:08d}"
        main_tags.extend((study_id, g, e, v) for g, e, v in patient_tags + [
            (0x08, 0x20, study_date), (0x08, 0x30, "093000"), (0x08, 0x50, accession), (0x08, 0x90, "Suzuki^Ichiro"),
            (0x08, 0x1030, "CT study"), (0x20, 0x0D, study_uid), (0x20, 0x10, "1")])
        identifiers.extend((study_id, g, e, v) for g, e, v in patient_idents + [
            (0x20, 0x0D, study_uid), (0x08, 0x50, accession), (0x08, 0x1030, "CT STUDY"), (0x08, 0x20, study_date)])
        metadata.append((study_id, 7, now))
        series_id = study_id + 1
        resources.append((series_id, SERIES, public_id(pid, study_uid, series_uid), study_id))
        main_tags.extend((series_id, g, e, v) for g, e, v in [
            (0x08, 0x60, "CT"), (0x08, 0x70, "Renkei Synthetic"), (0x08, 0x103E, "CT series 1"), (0x18, 0x15, "CHEST"),
            (0x20, 0x0E, series_uid), (0x20, 0x11, "1")])
        identifiers.append((series_id, 0x20, 0x0E, series_uid))
        metadata.extend([(series_id, 3, "BENCH"), (series_id, 7, now)])
        next_id = series_id + 1
        for n in range(study * 100, min(study * 100 + 100, count)):
            sop = f"2.25.{splitmix(n ^ 0x1257)}"
            resources.append((next_id, INSTANCE, public_id(pid, study_uid, series_uid, sop), series_id))
            main_tags.extend([(next_id, 0x08, 0x18, sop), (next_id, 0x20, 0x13, str(n % 100 + 1))])
            identifiers.append((next_id, 0x08, 0x18, sop))
            metadata.extend([(next_id, 1, str(n % 100 + 1)), (next_id, 2, now), (next_id, 3, "BENCH"),
                             (next_id, 8, "DicomProtocol"), (next_id, 9, "1.2.840.10008.1.2.1"),
                             (next_id, 10, "1.2.840.10008.5.1.4.1.1.2"), (next_id, 11, "127.0.0.1"),
                             (next_id, 12, "ORTHANC")])
            file_uuid = str(uuid.uuid4())
            attach(file_uuid)
            files.append((next_id, 1, file_uuid, size, size, 1, md5, md5))
            next_id += 1
        if len(resources) > 20000:
            flush()
    flush()
    db.finish(next_id)
    seconds = time.time() - started
    print(f'{{"count": {count}, "seconds": {seconds:.1f}, "rows_per_sec": {count / seconds:.0f}}}')


main()
