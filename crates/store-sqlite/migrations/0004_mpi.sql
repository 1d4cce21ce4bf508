-- The master patient index (expand only: older nodes ignore all of it; patients they add
-- are pending by default, and are matched once a newer node runs the matcher).

-- Persons: what linked patient records share. Only the matcher (one node at a time, under
-- its lease) creates them, numbering on from the largest.
CREATE TABLE person (
    pk          INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

-- Each patient is a record: its person, and a change counter (0: matched; otherwise
-- pending since its name, birth date or sex were recorded or changed).
ALTER TABLE patient ADD COLUMN person_pk INTEGER;
ALTER TABLE patient ADD COLUMN mpi_state INTEGER NOT NULL DEFAULT 1;
CREATE INDEX patient_by_person ON patient(person_pk);
CREATE INDEX patient_pending ON patient(pk) WHERE mpi_state <> 0;

-- Blocking keys: a record's candidates are the records sharing one of its keys.
CREATE TABLE mpi_key (
    key         TEXT NOT NULL,
    patient_pk  INTEGER NOT NULL,
    PRIMARY KEY (key, patient_pk)
) WITHOUT ROWID;
CREATE INDEX mpi_key_by_patient ON mpi_key(patient_pk);

-- Links between records, never deleted: a retired link keeps who retired it, when and why.
-- weight_milli: the match weight when scored, in thousandths of a bit.
CREATE TABLE mpi_link (
    pk              INTEGER PRIMARY KEY,
    patient_a       INTEGER NOT NULL,
    patient_b       INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    weight_milli    INTEGER,
    created_by      TEXT NOT NULL,
    created_reason  TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    retired_by      TEXT,
    retired_reason  TEXT,
    retired_at      INTEGER
);
CREATE UNIQUE INDEX mpi_link_current ON mpi_link(patient_a, patient_b) WHERE retired_at IS NULL;
CREATE INDEX mpi_link_current_by_b ON mpi_link(patient_b) WHERE retired_at IS NULL;
CREATE INDEX mpi_link_by_a ON mpi_link(patient_a);
CREATE INDEX mpi_link_by_b ON mpi_link(patient_b);
CREATE INDEX mpi_link_review ON mpi_link(weight_milli) WHERE retired_at IS NULL AND kind = 'candidate';

-- The matching model (JSON) in use; the newest row wins.
CREATE TABLE mpi_model (
    pk          INTEGER PRIMARY KEY,
    model       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
