//! Alerts: exams over their DRL or over a facility's threshold, and patients whose exams add
//! up beyond a facility's threshold within a rolling number of weeks (the cumulative
//! exposure a single exam's check cannot see).

use std::collections::BTreeMap;

use renkei_domain::dose::{AlertRule, Exam, Metric};
use serde::Serialize;

use crate::drl;

const WEEK: i64 = 7 * 86_400;

/// Why an exam is flagged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Over the DRL of its mapped category (triage: a DRL judges a facility's median).
    Drl { metric: Metric, value: f64, level: f64, ratio: f64, edition: String },
    /// Over the facility's own threshold for one exam.
    Threshold { metric: Metric, value: f64, threshold: f64 },
}

/// A patient whose exams summed over a window went over a facility's threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientAlert {
    pub patient: i64,
    pub patient_id: String,
    pub facility: String,
    pub metric: Metric,
    pub weeks: u32,
    pub threshold: f64,
    /// The largest sum over any such window, and that window's exams.
    pub total: f64,
    pub exams: Vec<i64>,
    /// The window's first and last exam, Unix seconds.
    pub from: i64,
    pub to: i64,
}

/// Why each exam is flagged, for the exams that are.
pub fn exam_alerts(exams: &[Exam], rules: &[AlertRule]) -> Vec<(i64, Vec<Reason>)> {
    exams
        .iter()
        .filter_map(|exam| {
            let (edition, comparisons) = drl::compare_exam(exam);
            let mut reasons: Vec<Reason> = comparisons
                .iter()
                .filter(|c| c.exceeds())
                .map(|c| Reason::Drl {
                    metric: c.metric,
                    value: c.value,
                    level: c.level,
                    ratio: c.ratio,
                    edition: edition.edition.clone(),
                })
                .collect();
            for rule in rules.iter().filter(|r| r.weeks == 0 && r.facility == exam.facility) {
                if let Some(value) = rule.metric.of_exam(exam).filter(|v| *v > rule.threshold) {
                    reasons.push(Reason::Threshold { metric: rule.metric, value, threshold: rule.threshold });
                }
            }
            (!reasons.is_empty()).then_some((exam.id, reasons))
        })
        .collect()
}

/// Patients over a cumulative rule: for each rule and patient, the window of `weeks` with
/// the largest sum, if that sum is over the threshold.
pub fn patient_alerts(exams: &[Exam], rules: &[AlertRule]) -> Vec<PatientAlert> {
    let mut alerts = Vec::new();
    for rule in rules.iter().filter(|r| r.weeks > 0) {
        let mut by_patient: BTreeMap<i64, Vec<(i64, f64, &Exam)>> = BTreeMap::new();
        for exam in exams.iter().filter(|e| e.facility == rule.facility) {
            if let (Some(at), Some(value)) = (exam.started_at, rule.metric.of_exam(exam)) {
                by_patient.entry(exam.patient).or_default().push((at, value, exam));
            }
        }
        for (patient, mut series) in by_patient {
            series.sort_by_key(|(at, _, exam)| (*at, exam.id));
            let span = i64::from(rule.weeks) * WEEK;
            let (mut start, mut sum) = (0, 0.0);
            let mut best: Option<(f64, usize, usize)> = None;
            for end in 0..series.len() {
                sum += series[end].1;
                while series[end].0 - series[start].0 >= span {
                    sum -= series[start].1;
                    start += 1;
                }
                if best.is_none_or(|(b, _, _)| sum > b) {
                    best = Some((sum, start, end));
                }
            }
            let Some((total, first, last)) = best.filter(|(total, _, _)| *total > rule.threshold) else { continue };
            alerts.push(PatientAlert {
                patient,
                patient_id: series[first].2.patient_id.clone(),
                facility: rule.facility.clone(),
                metric: rule.metric,
                weeks: rule.weeks,
                threshold: rule.threshold,
                total,
                exams: series[first..=last].iter().map(|(_, _, e)| e.id).collect(),
                from: series[first].0,
                to: series[last].0,
            });
        }
    }
    alerts
}

#[cfg(test)]
mod tests {
    use renkei_domain::dose::{Device, DoseKind, DoseSource};

    use super::*;

    fn exam(id: i64, patient: i64, day: i64, dlp: f64) -> Exam {
        Exam {
            id,
            facility: "east".into(),
            study_uid: format!("1.2.{id}"),
            patient,
            patient_id: format!("P{patient}"),
            kind: DoseKind::Ct,
            source: DoseSource::Rdsr,
            device_id: 1,
            device: Device::default(),
            started_at: Some(1_767_225_600 + day * 86_400),
            description: "胸部CT".into(),
            category: Some("ct.chest".into()),
            age_years: Some(50.0),
            weight_kg: None,
            ctdivol: Some(10.0),
            dlp: Some(dlp),
            dap: None,
            dose_rp: None,
            fluoro_time: None,
            agd: None,
            activity: None,
            events: 1,
        }
    }

    fn rule(weeks: u32, threshold: f64) -> AlertRule {
        AlertRule { facility: "east".into(), metric: Metric::Dlp, weeks, threshold, set_by: "x".into(), set_at: 0 }
    }

    #[test]
    fn exams_over_their_drl_or_a_threshold_are_flagged_with_their_reasons() {
        let exams = [exam(1, 1, 0, 400.0), exam(2, 1, 1, 500.0), exam(3, 2, 1, 900.0)];
        let flagged = exam_alerts(&exams, &[rule(0, 800.0)]);
        // Chest DRL 2025: DLP 430 mGy·cm.
        assert_eq!(flagged.iter().map(|(id, r)| (*id, r.len())).collect::<Vec<_>>(), [(2, 1), (3, 2)]);
        assert!(matches!(flagged[1].1[1], Reason::Threshold { threshold: 800.0, value: 900.0, .. }));
        assert!(matches!(&flagged[0].1[0], Reason::Drl { level: 430.0, edition, .. } if edition == "2025"));
    }

    #[test]
    fn a_patient_over_a_rolling_window_is_flagged_once_with_the_worst_window() {
        // Patient 1: 400 on day 0, 500 on day 20, 300 on day 90 (outside 12 weeks of day 0).
        let exams = [exam(1, 1, 0, 400.0), exam(2, 1, 20, 500.0), exam(3, 1, 90, 300.0), exam(4, 2, 0, 2000.0)];
        let alerts = patient_alerts(&exams, &[rule(12, 850.0)]);
        assert_eq!(alerts.len(), 2);
        let first = &alerts[0];
        assert_eq!((first.patient, first.total, first.exams.clone()), (1, 900.0, vec![1, 2]));
        assert_eq!(alerts[1].exams, [4]);
        assert!(patient_alerts(&exams, &[rule(12, 2500.0)]).is_empty());
        assert!(patient_alerts(&exams, &[rule(0, 1.0)]).is_empty(), "per-exam rules are not cumulative");
    }
}
