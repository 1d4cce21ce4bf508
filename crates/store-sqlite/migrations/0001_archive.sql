-- The archive index: facilities and their AE titles and nodes; the patient/study/series/instance
-- hierarchy per facility; previous versions of re-sent instances.
-- Every *_key column is the normalised form used for matching; the column beside it is the raw value.
-- Person names keep their raw value and, per component group (a: alphabetic, i: ideographic,
-- p: phonetic), a strict and a fuzzy search key (see renkei_domain::names).

CREATE TABLE facility (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE facility_ae (
    ae_title     TEXT PRIMARY KEY,
    facility_id  TEXT NOT NULL REFERENCES facility(id),
    position     INTEGER NOT NULL
);
CREATE INDEX facility_ae_by_facility ON facility_ae(facility_id);

CREATE TABLE node (
    facility_id  TEXT NOT NULL REFERENCES facility(id),
    ae_title     TEXT NOT NULL,
    host         TEXT NOT NULL,
    port         INTEGER NOT NULL,
    PRIMARY KEY (facility_id, ae_title)
);

CREATE TABLE patient (
    pk              INTEGER PRIMARY KEY,
    facility_id     TEXT NOT NULL,
    patient_id      TEXT NOT NULL,
    issuer          TEXT NOT NULL,
    name            TEXT,
    name_a          TEXT,
    name_i          TEXT,
    name_p          TEXT,
    name_a_fuzzy    TEXT,
    name_i_fuzzy    TEXT,
    name_p_fuzzy    TEXT,
    birth_date      TEXT,
    birth_date_key  TEXT,
    sex             TEXT,
    UNIQUE (facility_id, patient_id, issuer)
);
CREATE INDEX patient_by_alphabetic_name ON patient(facility_id, name_a);
CREATE INDEX patient_by_ideographic_name ON patient(facility_id, name_i);
CREATE INDEX patient_by_phonetic_name ON patient(facility_id, name_p);

CREATE TABLE study (
    pk              INTEGER PRIMARY KEY,
    facility_id     TEXT NOT NULL,
    patient_pk      INTEGER NOT NULL REFERENCES patient(pk),
    study_uid       TEXT NOT NULL,
    study_date      TEXT,
    study_date_key  TEXT,
    study_time      TEXT,
    study_time_key  TEXT,
    accession       TEXT,
    study_id        TEXT,
    description     TEXT,
    referring       TEXT,
    referring_a     TEXT,
    referring_i     TEXT,
    referring_p     TEXT,
    referring_a_fuzzy TEXT,
    referring_i_fuzzy TEXT,
    referring_p_fuzzy TEXT,
    charset         TEXT,
    UNIQUE (facility_id, study_uid)
);
CREATE INDEX study_by_patient ON study(patient_pk);
CREATE INDEX study_by_date ON study(facility_id, study_date_key);
CREATE INDEX study_by_accession ON study(facility_id, accession);

CREATE TABLE series (
    pk               INTEGER PRIMARY KEY,
    facility_id      TEXT NOT NULL,
    study_pk         INTEGER NOT NULL REFERENCES study(pk),
    series_uid       TEXT NOT NULL,
    modality         TEXT,
    series_number    TEXT,
    description      TEXT,
    body_part        TEXT,
    series_date      TEXT,
    series_date_key  TEXT,
    series_time      TEXT,
    series_time_key  TEXT,
    UNIQUE (facility_id, series_uid)
);
CREATE INDEX series_by_study ON series(study_pk);

CREATE TABLE instance (
    pk                INTEGER PRIMARY KEY,
    facility_id       TEXT NOT NULL,
    series_pk         INTEGER NOT NULL REFERENCES series(pk),
    sop_instance_uid  TEXT NOT NULL,
    sop_class_uid     TEXT NOT NULL,
    instance_number   TEXT,
    transfer_syntax   TEXT NOT NULL,
    blob              TEXT NOT NULL,
    size              INTEGER NOT NULL,
    received_at       INTEGER NOT NULL,
    -- What was wrong with the text encoding but could be read (codes, comma-separated).
    text_warnings     TEXT,
    UNIQUE (facility_id, sop_instance_uid)
);
CREATE INDEX instance_by_series ON instance(series_pk);

-- Earlier contents of an instance that was re-sent with the same UID and different bytes.
CREATE TABLE instance_version (
    pk               INTEGER PRIMARY KEY,
    instance_pk      INTEGER NOT NULL REFERENCES instance(pk),
    transfer_syntax  TEXT NOT NULL,
    blob             TEXT NOT NULL,
    size             INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    superseded_at    INTEGER NOT NULL
);
CREATE INDEX instance_version_by_instance ON instance_version(instance_pk);
