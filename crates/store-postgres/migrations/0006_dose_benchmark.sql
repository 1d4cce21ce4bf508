-- The benchmark and distribution views read one category's metric per facility and device
-- over up to millions of exams. Each exam row carries its whole report as JSON, so reading
-- the metric from the rows costs a page per exam; an index that holds the filters and every
-- metric answers those views by an index-only scan, in (category, facility, device) order.
DROP INDEX dose_exam_by_category;
CREATE INDEX dose_exam_by_category ON dose_exam(category, facility_id, device_pk)
    INCLUDE (kind, started_at, ctdivol, dlp, dap, dose_rp, fluoro_time, agd, activity);
