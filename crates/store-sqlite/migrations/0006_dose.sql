-- Radiation dose management (expand only: older nodes ignore all of it; objects they store
-- are not queued, and `renkei dose reindex` reads them later).

-- Stored objects that may carry dose (dose SRs, CT images), not yet read by the extractor.
CREATE TABLE dose_pending (
    instance_pk  INTEGER PRIMARY KEY,
    queued_at    INTEGER NOT NULL
);
CREATE INDEX dose_pending_by_time ON dose_pending(queued_at);

-- Each dose report read from one object (renkei_domain::dose::DoseReport as JSON).
CREATE TABLE dose_report (
    instance_pk  INTEGER PRIMARY KEY,
    study_pk     INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    report       TEXT NOT NULL
);
CREATE INDEX dose_report_by_study ON dose_report(study_pk);

-- Devices per facility, told apart by all their identity fields together (a station name
-- alone is reused across rooms).
CREATE TABLE dose_device (
    pk            INTEGER PRIMARY KEY,
    facility_id   TEXT NOT NULL,
    manufacturer  TEXT NOT NULL,
    model         TEXT NOT NULL,
    serial        TEXT NOT NULL,
    station       TEXT NOT NULL,
    institution   TEXT NOT NULL,
    observer_uid  TEXT NOT NULL,
    UNIQUE (facility_id, manufacturer, model, serial, station, institution, observer_uid)
);

-- One exam: a study's reports of one kind merged, each irradiation event once (or, for a
-- CT study without an RDSR, its images' dose). Metrics in canonical units (see
-- renkei_domain::dose); the merged report as JSON.
CREATE TABLE dose_exam (
    pk            INTEGER PRIMARY KEY,
    facility_id   TEXT NOT NULL,
    study_pk      INTEGER NOT NULL,
    patient_pk    INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    source        TEXT NOT NULL,
    device_pk     INTEGER NOT NULL,
    started_at    INTEGER,
    description   TEXT NOT NULL,
    category      TEXT,
    age_years     REAL,
    weight_kg     REAL,
    ctdivol       REAL,
    dlp           REAL,
    dap           REAL,
    dose_rp       REAL,
    fluoro_time   REAL,
    agd           REAL,
    activity      REAL,
    events        INTEGER NOT NULL,
    exam          TEXT NOT NULL,
    UNIQUE (study_pk, kind)
);
CREATE INDEX dose_exam_by_patient ON dose_exam(patient_pk, started_at);
CREATE INDEX dose_exam_by_facility ON dose_exam(facility_id, kind, started_at);
CREATE INDEX dose_exam_by_category ON dose_exam(category, facility_id, device_pk);

-- A facility's mapping of exam descriptions to DRL categories, as an administrator
-- confirmed it (category NULL: confirmed as none).
CREATE TABLE dose_protocol (
    facility_id   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    description   TEXT NOT NULL,
    category      TEXT,
    confirmed_by  TEXT NOT NULL,
    confirmed_at  INTEGER NOT NULL,
    PRIMARY KEY (facility_id, kind, description)
);

-- A facility's alert thresholds on one metric (canonical units): per exam (weeks 0), or on
-- a patient's sum over a rolling number of weeks.
CREATE TABLE dose_alert_rule (
    facility_id   TEXT NOT NULL,
    metric        TEXT NOT NULL,
    weeks         INTEGER NOT NULL,
    threshold     REAL NOT NULL,
    set_by        TEXT NOT NULL,
    set_at        INTEGER NOT NULL,
    PRIMARY KEY (facility_id, metric, weeks)
);
