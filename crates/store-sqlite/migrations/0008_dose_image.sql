-- Each CT image's dose attributes (renkei_domain::dose::ImageDose as JSON), read once when
-- the extractor takes the image from the queue. A study without an RDSR gets its dose from
-- these, and an RDSR's events their patient's size, without reading the images again.
CREATE TABLE dose_image (
    instance_pk  INTEGER PRIMARY KEY,
    study_pk     INTEGER NOT NULL,
    dose         TEXT NOT NULL
);
CREATE INDEX dose_image_by_study ON dose_image(study_pk);
