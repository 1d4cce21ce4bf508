-- Exam lists and alerts read the newest exams first: of a category, of a kind, or of the
-- whole group in a period (an administrator's). Without these, listing the latest 5,000 of
-- a quarter of a million head CTs sorted them all.
CREATE INDEX dose_exam_by_category_time ON dose_exam(category, started_at);
CREATE INDEX dose_exam_by_kind_time ON dose_exam(kind, started_at);
CREATE INDEX dose_exam_by_time ON dose_exam(started_at);
