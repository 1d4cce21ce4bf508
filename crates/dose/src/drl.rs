//! Japanese diagnostic reference levels (J-RIME), as versioned data: each edition is a file
//! under `data/` with its effective date and source, never constants in code. A category
//! keeps its id across editions, so a facility's protocol mapping outlives an edition.
//!
//! A DRL is the 75th percentile of the national distribution of facility medians: what it
//! judges is a facility's median for a protocol. Comparing one exam with it is triage only.

use std::sync::LazyLock;

pub use renkei_domain::dose::Metric;
use renkei_domain::dose::{DoseKind, DoseReport, Exam};
use unicode_normalization::UnicodeNormalization;

/// One reference level.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Level {
    pub category: String,
    pub kind: DoseKind,
    pub name_ja: String,
    pub name_en: String,
    /// Ages it applies to, years, from inclusive to exclusive (none: adults).
    pub ages: Option<(f64, f64)>,
    pub metric: Metric,
    pub value: f64,
}

impl Level {
    /// Whether it applies to a patient of this age (unknown ages count as adults).
    pub fn applies_to(&self, age_years: Option<f64>) -> bool {
        match (self.ages, age_years) {
            (Some((from, to)), Some(age)) => from <= age && age < to,
            (Some(_), None) => false,
            (None, Some(age)) => age >= 15.0,
            (None, None) => true,
        }
    }
}

/// One edition of the Japanese DRLs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Edition {
    pub edition: String,
    /// From when it applies (YYYY-MM-DD).
    pub effective: String,
    pub source: String,
    pub provenance: String,
    pub levels: Vec<Level>,
}

impl Edition {
    /// The levels of `category` that apply to a patient of this age.
    pub fn levels_for(&self, category: &str, age_years: Option<f64>) -> impl Iterator<Item = &Level> {
        self.levels.iter().filter(move |l| l.category == category && l.applies_to(age_years))
    }

    /// Values (by metric) against the levels of `category` for a patient of this age.
    fn compare(
        &self,
        category: &str,
        age_years: Option<f64>,
        value: impl Fn(Metric) -> Option<f64>,
    ) -> Vec<Comparison> {
        self.levels_for(category, age_years)
            .filter_map(|level| {
                let value = value(level.metric)?;
                Some(Comparison { metric: level.metric, value, level: level.value, ratio: value / level.value })
            })
            .collect()
    }
}

/// Why a DRL file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("DRL table, line {line}: {reason}")]
pub struct TableError {
    pub line: usize,
    pub reason: String,
}

const SHIPPED: [&str; 2] = [include_str!("../data/drl-2020.tsv"), include_str!("../data/drl-2025.tsv")];

static EDITIONS: LazyLock<Vec<Edition>> = LazyLock::new(|| {
    let mut editions: Vec<Edition> =
        SHIPPED.iter().map(|text| parse(text).unwrap_or_else(|e| panic!("shipped DRL table: {e}"))).collect();
    editions.sort_by(|a, b| a.effective.cmp(&b.effective));
    editions
});

/// The shipped editions, oldest first.
pub fn editions() -> &'static [Edition] {
    &EDITIONS
}

/// The edition in force on `date` (YYYY-MM-DD or YYYYMMDD…): the latest effective by then,
/// else the oldest.
pub fn edition_on(date: &str) -> &'static Edition {
    let day = normalized_date(date);
    editions().iter().rev().find(|e| e.effective <= day).unwrap_or(&editions()[0])
}

/// The newest edition.
pub fn current() -> &'static Edition {
    editions().last().expect("at least one DRL edition ships")
}

fn normalized_date(date: &str) -> String {
    let digits: String = date.chars().filter(char::is_ascii_digit).take(8).collect();
    if digits.len() == 8 { format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..]) } else { String::new() }
}

/// Parses one edition: `key<TAB>value` lines (edition, effective, source, provenance), then
/// a header line and one level a line. `#` starts a comment line.
pub fn parse(text: &str) -> Result<Edition, TableError> {
    let fail = |line: usize, reason: &str| TableError { line: line + 1, reason: reason.to_owned() };
    let mut meta = std::collections::HashMap::new();
    let mut levels = Vec::new();
    let mut header = false;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if !header {
            if fields.first() == Some(&"category") {
                header = true;
            } else if let [key, value] = fields[..] {
                meta.insert(key, value.to_owned());
            } else {
                return Err(fail(n, "expected key<TAB>value"));
            }
            continue;
        }
        let [category, kind, name_ja, name_en, age_from, age_to, metric, unit, value] = fields[..] else {
            return Err(fail(n, "expected 9 fields"));
        };
        let kind = DoseKind::parse(kind).ok_or_else(|| fail(n, "unknown kind"))?;
        let metric = Metric::parse(metric).ok_or_else(|| fail(n, "unknown metric"))?;
        if unit != metric.unit() {
            return Err(fail(n, &format!("{} is in {}, not {unit}", metric.as_str(), metric.unit())));
        }
        let ages = match (age_from, age_to) {
            ("", "") => None,
            (from, to) => {
                Some((from.parse().map_err(|_| fail(n, "bad age"))?, to.parse().map_err(|_| fail(n, "bad age"))?))
            }
        };
        let value: f64 = value.parse().map_err(|_| fail(n, "bad value"))?;
        if !(value > 0.0 && value.is_finite()) {
            return Err(fail(n, "a level must be positive"));
        }
        levels.push(Level {
            category: category.to_owned(),
            kind,
            name_ja: name_ja.to_owned(),
            name_en: name_en.to_owned(),
            ages,
            metric,
            value,
        });
    }
    let mut take = |key: &str| meta.remove(key).ok_or_else(|| fail(0, &format!("no {key}")));
    let edition = Edition {
        edition: take("edition")?,
        effective: take("effective")?,
        source: take("source")?,
        provenance: take("provenance")?,
        levels,
    };
    if normalized_date(&edition.effective) != edition.effective {
        return Err(fail(0, "effective must be YYYY-MM-DD"));
    }
    Ok(edition)
}

/// A category as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Category {
    pub id: String,
    pub kind: DoseKind,
    pub name_ja: String,
    pub name_en: String,
}

/// Every category of every edition, newest names first, each once.
pub fn categories() -> Vec<Category> {
    let mut out: Vec<Category> = Vec::new();
    for edition in editions().iter().rev() {
        for level in &edition.levels {
            if !out.iter().any(|c| c.id == level.category) {
                out.push(Category {
                    id: level.category.clone(),
                    kind: level.kind,
                    name_ja: level.name_ja.clone(),
                    name_en: level.name_en.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    out
}

/// One exam measured against one level.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Comparison {
    pub metric: Metric,
    pub value: f64,
    pub level: f64,
    /// value / level.
    pub ratio: f64,
}

impl Comparison {
    pub fn exceeds(&self) -> bool {
        self.ratio > 1.0
    }
}

/// An exam's report against the levels of `category` in `edition`, for its patient's age.
pub fn compare(report: &DoseReport, edition: &Edition, category: &str) -> Vec<Comparison> {
    edition.compare(category, report.patient.age_years, |metric| metric.of(report))
}

/// A stored exam against the levels of its mapped category, in the edition in force on
/// the day it was done (the newest for an undated exam). Nothing for an unmapped exam.
pub fn compare_exam(exam: &Exam) -> (&'static Edition, Vec<Comparison>) {
    let edition = exam.started_at.map_or_else(current, |at| edition_on(&renkei_domain::tier::day_in_japan(at)));
    let comparisons = match &exam.category {
        Some(category) => edition.compare(category, exam.age_years, |metric| metric.of_exam(exam)),
        None => Vec::new(),
    };
    (edition, comparisons)
}

static KEYWORDS: LazyLock<Vec<(String, Vec<String>)>> = LazyLock::new(|| {
    include_str!("../data/drl-keywords.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("category\t") && !l.trim().is_empty())
        .filter_map(|l| l.split_once('\t'))
        .map(|(category, words)| (category.to_owned(), words.split(',').map(fold).collect()))
        .collect()
});

/// Text folded for keyword matching: NFKC (full-width Latin and half-width kana become
/// their usual forms), lower case.
fn fold(text: &str) -> String {
    text.nfkc().collect::<String>().to_lowercase()
}

/// Categories of `kind` that the descriptions suggest, best first, with a score (the
/// characters of matched words: 冠動脈 says more than 心).
pub fn suggest(kind: DoseKind, descriptions: &[&str]) -> Vec<(String, usize)> {
    let text = fold(&descriptions.join(" "));
    let kinds: Vec<String> = categories().into_iter().filter(|c| c.kind == kind).map(|c| c.id).collect();
    let mut scored: Vec<(String, usize)> = KEYWORDS
        .iter()
        .filter(|(category, _)| kinds.contains(category))
        .filter_map(|(category, words)| {
            let score: usize = words.iter().filter(|w| contains_word(&text, w)).map(|w| w.chars().count()).sum();
            (score > 0).then(|| (category.clone(), score))
        })
        .collect();
    scored.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    scored
}

/// Whether `word` occurs in `text`; an ASCII word only where it does not run on into
/// other letters or digits (so `pe` is not found in `perfusion`).
fn contains_word(text: &str, word: &str) -> bool {
    if !word.is_ascii() {
        return text.contains(word);
    }
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let apart = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
        apart(before) && apart(after)
    })
}
