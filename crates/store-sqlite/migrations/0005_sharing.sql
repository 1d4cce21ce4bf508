-- Sharing between facilities (expand only: older nodes ignore all of it, and so show
-- nothing shared).

-- What a facility publishes (公開設定): one study, or every study of a patient (those that
-- arrive later too), to named facilities or the whole group, for a period, with the
-- patient's consent. Never deleted: revoking keeps who, when and why.
CREATE TABLE publication (
    pk              INTEGER PRIMARY KEY,
    facility_id     TEXT NOT NULL,
    patient_pk      INTEGER NOT NULL REFERENCES patient(pk),
    -- NULL: every study of the patient.
    study_pk        INTEGER REFERENCES study(pk),
    to_group        INTEGER NOT NULL,
    starts_at       INTEGER NOT NULL,
    ends_at         INTEGER NOT NULL,
    consent_by      TEXT NOT NULL,
    consent_at      INTEGER NOT NULL,
    consent_scope   TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    revoked_by      TEXT,
    revoked_reason  TEXT,
    revoked_at      INTEGER
);
CREATE INDEX publication_by_facility ON publication(facility_id, pk);
CREATE INDEX publication_current ON publication(ends_at) WHERE revoked_at IS NULL;
CREATE INDEX publication_by_study ON publication(study_pk) WHERE study_pk IS NOT NULL;
CREATE INDEX publication_by_patient ON publication(patient_pk);

-- The named facilities of a publication not for the whole group.
CREATE TABLE publication_target (
    publication_pk  INTEGER NOT NULL REFERENCES publication(pk),
    facility_id     TEXT NOT NULL,
    PRIMARY KEY (publication_pk, facility_id)
) WITHOUT ROWID;
CREATE INDEX publication_target_by_facility ON publication_target(facility_id, publication_pk);

-- Emergency access: a facility sees every study of the person one of its patients is
-- linked to, for a while, with a stated reason; flagged until an administrator reviews it.
-- It can be closed early.
CREATE TABLE break_glass (
    pk               INTEGER PRIMARY KEY,
    facility_id      TEXT NOT NULL,
    patient_pk       INTEGER NOT NULL REFERENCES patient(pk),
    opened_by        TEXT NOT NULL,
    reason           TEXT NOT NULL,
    starts_at        INTEGER NOT NULL,
    ends_at          INTEGER NOT NULL,
    reviewed_by      TEXT,
    reviewed_note    TEXT,
    reviewed_at      INTEGER,
    -- Ended before its time: by whom, why, when (then also its ends_at).
    closed_by        TEXT,
    closed_reason    TEXT,
    closed_at        INTEGER
);
CREATE INDEX break_glass_by_facility ON break_glass(facility_id, ends_at);

-- Every access of a facility to a study another facility shares.
CREATE TABLE shared_access (
    pk               INTEGER PRIMARY KEY,
    accessed_at      INTEGER NOT NULL,
    facility_id      TEXT NOT NULL,
    via              TEXT NOT NULL,
    origin_id        TEXT NOT NULL,
    study_uid        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    publication_pk   INTEGER,
    break_glass_pk   INTEGER
);
CREATE INDEX shared_access_by_time ON shared_access(accessed_at);
CREATE INDEX shared_access_by_facility ON shared_access(facility_id, pk);
CREATE INDEX shared_access_by_origin ON shared_access(origin_id, pk);
CREATE INDEX shared_access_by_break_glass ON shared_access(break_glass_pk) WHERE break_glass_pk IS NOT NULL;
