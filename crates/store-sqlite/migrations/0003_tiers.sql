-- Storage tiers (expand only: older nodes ignore all of it).
-- A blob listed here has a verified copy in the cold tier; its hot copy may be gone.
CREATE TABLE cold_blob (
    blob      TEXT PRIMARY KEY,
    size      INTEGER NOT NULL,
    moved_at  INTEGER NOT NULL
);
CREATE INDEX instance_by_blob ON instance(blob);

-- Every retrieval of a study, with the study's age in days then (NULL: undated study).
CREATE TABLE access_log (
    pk           INTEGER PRIMARY KEY,
    facility_id  TEXT NOT NULL,
    study_uid    TEXT NOT NULL,
    age_days     INTEGER,
    accessed_at  INTEGER NOT NULL
);
CREATE INDEX access_log_by_time ON access_log(accessed_at);

-- When a study was last retrieved (NULL: never), for the not-accessed-for-N-days rule.
ALTER TABLE study ADD COLUMN accessed_at INTEGER;

-- Who runs a background job (lifecycle, prefetch) until when.
CREATE TABLE job_lease (
    job         TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
