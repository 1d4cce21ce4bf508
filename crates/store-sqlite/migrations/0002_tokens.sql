-- API tokens, as hashes only. An administrator's token has no facility.
CREATE TABLE token (
    hash         TEXT PRIMARY KEY,
    facility_id  TEXT REFERENCES facility(id),
    role         TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
