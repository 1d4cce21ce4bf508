//! An exam: everything a study's dose reports of one kind say, each irradiation event once.
//!
//! Devices send more than one report for a study. Siemens sends "continued" reports that
//! repeat the earlier events and add new ones; a cumulative report covers all the others.
//! Events are told apart by their Irradiation Event UID, so nothing is counted twice.

use renkei_domain::dose::{DoseReport, EventData, Totals, sum_over};

/// The reports of one study and kind merged into one exam (`None` for no reports).
/// Reports come in the order they were stored; the first names the exam.
pub fn merge(reports: &[DoseReport]) -> Option<DoseReport> {
    let (first, rest) = reports.split_first()?;
    if rest.is_empty() {
        return Some(first.clone());
    }
    // A report holding every event of all the others is cumulative: its totals stand.
    let covers = |report: &DoseReport| {
        reports.iter().flat_map(|r| &r.events).all(|e| report.events.iter().any(|mine| mine.uid == e.uid))
    };
    let cumulative = reports.iter().filter(|r| covers(r)).max_by_key(|r| r.events.len());
    let mut exam = cumulative.unwrap_or(first).clone();
    exam.sop_instance_uid.clone_from(&first.sop_instance_uid);
    exam.events.clear();
    for event in reports.iter().flat_map(|r| &r.events) {
        if !exam.events.iter().any(|e| e.uid == event.uid) {
            exam.events.push(event.clone());
        }
    }
    if cumulative.is_none() {
        exam.totals = totals_of_events(&exam, reports);
        exam.notes.push(format!("{} reports merged; totals are the sums of their distinct events", reports.len()));
    }
    exam.started = reports.iter().map(|r| r.started.as_str()).filter(|s| !s.is_empty()).min().unwrap_or("").to_owned();
    Some(exam)
}

fn totals_of_events(exam: &DoseReport, reports: &[DoseReport]) -> Totals {
    Totals {
        dlp: sum_over(&exam.events, EventData::dlp),
        dap: sum_over(&exam.events, EventData::dap),
        dose_rp: sum_over(&exam.events, EventData::dose_rp),
        agd: sum_over(&exam.events, EventData::agd),
        activity: sum_over(&exam.events, EventData::activity),
        // Fluoroscopy time is reported per report, not per event: the longest stands, which
        // undercounts only reports that split one procedure's fluoroscopy between them.
        fluoro_time: reports.iter().filter_map(|r| r.totals.fluoro_time).reduce(f64::max),
        events: Some(exam.events.len() as u32),
    }
}

#[cfg(test)]
mod tests {
    use renkei_domain::dose::{CtEvent, Device, DoseKind, DoseSource, Event, PatientSize};

    use super::*;

    fn report(uid: &str, events: &[(&str, f64)]) -> DoseReport {
        DoseReport {
            sop_instance_uid: uid.into(),
            study_uid: "1.2.3".into(),
            source: DoseSource::Rdsr,
            kind: DoseKind::Ct,
            device: Device::default(),
            started: format!("2026010{}", uid.len()),
            study_description: String::new(),
            requested_procedure: String::new(),
            patient: PatientSize::default(),
            totals: Totals { dlp: Some(events.iter().map(|e| e.1).sum()), ..Totals::default() },
            events: events
                .iter()
                .map(|(uid, dlp)| Event {
                    uid: (*uid).into(),
                    protocol: String::new(),
                    target_region: String::new(),
                    started: String::new(),
                    data: EventData::Ct(CtEvent { dlp: Some(*dlp), ..CtEvent::default() }),
                })
                .collect(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_continued_report_adds_only_its_new_events() {
        let first = report("a", &[("e1", 100.0), ("e2", 50.0)]);
        let continued = report("bb", &[("e1", 100.0), ("e2", 50.0), ("e3", 25.0)]);
        let exam = merge(&[first.clone(), continued]).unwrap();
        assert_eq!(exam.events.len(), 3);
        assert_eq!(exam.totals.dlp, Some(175.0), "the cumulative report's total");
        assert_eq!(exam.sop_instance_uid, "a");
        assert_eq!(exam.started, "20260101");
        assert_eq!(merge(std::slice::from_ref(&first)).unwrap(), first);
        assert_eq!(merge(&[]), None);
    }

    #[test]
    fn partial_reports_add_up_their_distinct_events() {
        let exam = merge(&[report("a", &[("e1", 100.0)]), report("b", &[("e2", 40.0)]), report("a", &[("e1", 100.0)])])
            .unwrap();
        assert_eq!(exam.events.len(), 2);
        assert_eq!(exam.totals.dlp, Some(140.0));
        assert!(exam.notes.iter().any(|n| n.contains("merged")));
    }
}
