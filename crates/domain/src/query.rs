//! Query semantics: levels, indexed attributes and PS3.4 C.2.2.2 matching.
//!
//! DIMSE C-FIND (and later QIDO-RS) parse their keys into a [`Query`]; the store backends
//! turn a `Query` into their own filter language. Matching rules live here, once.

use std::collections::BTreeMap;

use crate::ids::Uid;

/// A query/retrieve level (PS3.4 C.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueryLevel {
    Patient,
    Study,
    Series,
    Image,
}

impl QueryLevel {
    /// Parses the Query/Retrieve Level (0008,0052) value.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "PATIENT" => Some(Self::Patient),
            "STUDY" => Some(Self::Study),
            "SERIES" => Some(Self::Series),
            "IMAGE" => Some(Self::Image),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "PATIENT",
            Self::Study => "STUDY",
            Self::Series => "SERIES",
            Self::Image => "IMAGE",
        }
    }
}

/// How an attribute's values are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// Case-sensitive text with wildcards (LO, SH, CS, IS).
    Text,
    /// Person name: wildcards, and case-insensitive as PS3.4 C.2.2.2.1 allows.
    PersonName,
    /// DA: single value or range.
    Date,
    /// TM: single value or range.
    Time,
    /// UI: single value or a backslash-separated list.
    Uid,
    /// Derived by the archive (counts, availability); not matchable.
    Computed,
}

macro_rules! attributes {
    ($( $variant:ident = ($group:literal, $element:literal, $level:ident, $kind:ident, $keyword:literal) ),* $(,)?) => {
        /// An attribute the archive indexes or computes, and so can match and return.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Attribute { $($variant),* }

        impl Attribute {
            /// Every known attribute, in tag order within each level.
            pub const ALL: &'static [Attribute] = &[$(Attribute::$variant),*];

            /// The DICOM tag as (group, element).
            pub fn tag(self) -> (u16, u16) {
                match self { $(Attribute::$variant => ($group, $element)),* }
            }

            /// The level this attribute belongs to.
            pub fn level(self) -> QueryLevel {
                match self { $(Attribute::$variant => QueryLevel::$level),* }
            }

            pub fn kind(self) -> MatchKind {
                match self { $(Attribute::$variant => MatchKind::$kind),* }
            }

            /// The DICOM keyword, for logs and error messages.
            pub fn keyword(self) -> &'static str {
                match self { $(Attribute::$variant => $keyword),* }
            }
        }
    };
}

attributes! {
    PatientName = (0x0010, 0x0010, Patient, PersonName, "PatientName"),
    PatientId = (0x0010, 0x0020, Patient, Text, "PatientID"),
    IssuerOfPatientId = (0x0010, 0x0021, Patient, Text, "IssuerOfPatientID"),
    PatientBirthDate = (0x0010, 0x0030, Patient, Date, "PatientBirthDate"),
    PatientSex = (0x0010, 0x0040, Patient, Text, "PatientSex"),
    NumberOfPatientRelatedStudies = (0x0020, 0x1200, Patient, Computed, "NumberOfPatientRelatedStudies"),
    NumberOfPatientRelatedSeries = (0x0020, 0x1202, Patient, Computed, "NumberOfPatientRelatedSeries"),
    NumberOfPatientRelatedInstances = (0x0020, 0x1204, Patient, Computed, "NumberOfPatientRelatedInstances"),
    StudyInstanceUid = (0x0020, 0x000D, Study, Uid, "StudyInstanceUID"),
    StudyDate = (0x0008, 0x0020, Study, Date, "StudyDate"),
    StudyTime = (0x0008, 0x0030, Study, Time, "StudyTime"),
    AccessionNumber = (0x0008, 0x0050, Study, Text, "AccessionNumber"),
    ModalitiesInStudy = (0x0008, 0x0061, Study, Text, "ModalitiesInStudy"),
    // Only for studies another facility shares: the name of that facility.
    InstitutionName = (0x0008, 0x0080, Study, Computed, "InstitutionName"),
    ReferringPhysicianName = (0x0008, 0x0090, Study, PersonName, "ReferringPhysicianName"),
    StudyDescription = (0x0008, 0x1030, Study, Text, "StudyDescription"),
    StudyId = (0x0020, 0x0010, Study, Text, "StudyID"),
    NumberOfStudyRelatedSeries = (0x0020, 0x1206, Study, Computed, "NumberOfStudyRelatedSeries"),
    NumberOfStudyRelatedInstances = (0x0020, 0x1208, Study, Computed, "NumberOfStudyRelatedInstances"),
    SeriesInstanceUid = (0x0020, 0x000E, Series, Uid, "SeriesInstanceUID"),
    SeriesDate = (0x0008, 0x0021, Series, Date, "SeriesDate"),
    SeriesTime = (0x0008, 0x0031, Series, Time, "SeriesTime"),
    Modality = (0x0008, 0x0060, Series, Text, "Modality"),
    SeriesDescription = (0x0008, 0x103E, Series, Text, "SeriesDescription"),
    BodyPartExamined = (0x0018, 0x0015, Series, Text, "BodyPartExamined"),
    SeriesNumber = (0x0020, 0x0011, Series, Text, "SeriesNumber"),
    NumberOfSeriesRelatedInstances = (0x0020, 0x1209, Series, Computed, "NumberOfSeriesRelatedInstances"),
    SopClassUid = (0x0008, 0x0016, Image, Uid, "SOPClassUID"),
    SopInstanceUid = (0x0008, 0x0018, Image, Uid, "SOPInstanceUID"),
    InstanceAvailability = (0x0008, 0x0056, Study, Computed, "InstanceAvailability"),
    InstanceNumber = (0x0020, 0x0013, Image, Text, "InstanceNumber"),
}

impl Attribute {
    /// Looks an attribute up by its tag.
    pub fn from_tag(group: u16, element: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.tag() == (group, element))
    }

    /// Looks an attribute up by its DICOM keyword.
    pub fn from_keyword(keyword: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.keyword() == keyword)
    }

    /// The value representation.
    pub fn vr(self) -> &'static str {
        use Attribute::*;
        match self {
            PatientName | ReferringPhysicianName => "PN",
            PatientId | IssuerOfPatientId | StudyDescription | SeriesDescription | InstitutionName => "LO",
            PatientBirthDate | StudyDate | SeriesDate => "DA",
            StudyTime | SeriesTime => "TM",
            StudyInstanceUid | SeriesInstanceUid | SopClassUid | SopInstanceUid => "UI",
            AccessionNumber | StudyId => "SH",
            PatientSex | Modality | ModalitiesInStudy | BodyPartExamined | InstanceAvailability => "CS",
            SeriesNumber
            | InstanceNumber
            | NumberOfPatientRelatedStudies
            | NumberOfPatientRelatedSeries
            | NumberOfPatientRelatedInstances
            | NumberOfStudyRelatedSeries
            | NumberOfStudyRelatedInstances
            | NumberOfSeriesRelatedInstances => "IS",
        }
    }

    /// The unique key of a level (PS3.4 C.3).
    pub fn unique_key(level: QueryLevel) -> Self {
        match level {
            QueryLevel::Patient => Self::PatientId,
            QueryLevel::Study => Self::StudyInstanceUid,
            QueryLevel::Series => Self::SeriesInstanceUid,
            QueryLevel::Image => Self::SopInstanceUid,
        }
    }
}

/// A matching key that could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid matching key for {attribute}: {reason}")]
pub struct QueryError {
    pub attribute: &'static str,
    pub reason: &'static str,
}

/// One key's matching rule, after parsing (PS3.4 C.2.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// Empty value, or a lone `*`: matches everything, including absent values.
    Universal,
    /// Single value matching.
    Exact(String),
    /// Wildcard matching: `*` any run, `?` any one character.
    Wildcard(String),
    /// Inclusive range over normalised dates (`YYYYMMDD`) or times (`HHMMSS.FFFFFF`).
    Range { from: Option<String>, to: Option<String> },
    /// List of UID matching: any of these.
    UidList(Vec<Uid>),
    /// Person name matching: each pattern (unfolded, possibly with wildcards) must match its
    /// component group, or any group. The store folds both sides with [`crate::names`].
    PersonName(Vec<(NameGroup, String)>),
}

/// Which component group of a person name a pattern applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameGroup {
    Any,
    Alphabetic,
    Ideographic,
    Phonetic,
}

impl Matcher {
    /// Parses the raw value of a key into its matching rule.
    pub fn parse(attribute: Attribute, raw: &str) -> Result<Self, QueryError> {
        let value = raw.trim_matches(|c| c == ' ' || c == '\0');
        if value.is_empty() || value == "*" {
            return Ok(Self::Universal);
        }
        let err = |reason| QueryError { attribute: attribute.keyword(), reason };
        match attribute.kind() {
            MatchKind::Computed => Ok(Self::Universal),
            MatchKind::PersonName => Ok(Self::person_name(value)),
            MatchKind::Text => {
                if value.contains(['*', '?']) {
                    Ok(Self::Wildcard(value.to_owned()))
                } else {
                    Ok(Self::Exact(value.to_owned()))
                }
            }
            MatchKind::Uid => {
                let mut uids = Vec::new();
                for part in value.split('\\') {
                    uids.push(Uid::new(part).map_err(|_| err("not a UID list"))?);
                }
                if uids.len() == 1 { Ok(Self::Exact(uids.remove(0).into())) } else { Ok(Self::UidList(uids)) }
            }
            MatchKind::Date => {
                parse_range(value, normalize_date, normalize_date).ok_or_else(|| err("not a date or date range"))
            }
            MatchKind::Time => {
                parse_range(value, time_lower_bound, time_upper_bound).ok_or_else(|| err("not a time or time range"))
            }
        }
    }

    /// A name pattern with component groups (`Yamada*=山田*`) applies group by group; one
    /// without them applies to any group.
    fn person_name(value: &str) -> Self {
        if !value.contains('=') {
            return Self::PersonName(vec![(NameGroup::Any, value.to_owned())]);
        }
        let groups = [NameGroup::Alphabetic, NameGroup::Ideographic, NameGroup::Phonetic];
        let parts: Vec<(NameGroup, String)> = groups
            .into_iter()
            .zip(value.splitn(3, '='))
            .map(|(group, pattern)| (group, pattern.trim().to_owned()))
            .filter(|(_, pattern)| !pattern.is_empty() && pattern != "*")
            .collect();
        if parts.is_empty() { Self::Universal } else { Self::PersonName(parts) }
    }

    /// Whether a stored (already normalised) value matches. The store backends evaluate the
    /// same rules in their own query language; this is the reference.
    pub fn matches(&self, stored: Option<&str>) -> bool {
        match self {
            Self::PersonName(parts) => stored.is_some_and(|stored| {
                let name = crate::names::PersonName::parse(stored);
                parts.iter().all(|(group, pattern)| {
                    let candidates: &[&str] = match group {
                        NameGroup::Any => &name.groups(),
                        NameGroup::Alphabetic => &[&name.alphabetic],
                        NameGroup::Ideographic => &[&name.ideographic],
                        NameGroup::Phonetic => &[&name.phonetic],
                    };
                    let pattern = crate::names::name_key(pattern);
                    candidates.iter().any(|c| wildcard_match(&pattern, &crate::names::name_key(c)))
                })
            }),
            Self::Universal => true,
            Self::Exact(want) => stored == Some(want.as_str()),
            Self::Wildcard(pattern) => stored.is_some_and(|s| wildcard_match(pattern, s)),
            Self::Range { from, to } => stored.is_some_and(|s| {
                !s.is_empty() && from.as_deref().is_none_or(|f| s >= f) && to.as_deref().is_none_or(|t| s <= t)
            }),
            Self::UidList(uids) => stored.is_some_and(|s| uids.iter().any(|u| u.as_str() == s)),
        }
    }
}

fn parse_range(value: &str, lower: fn(&str) -> Option<String>, upper: fn(&str) -> Option<String>) -> Option<Matcher> {
    match value.split_once('-') {
        None => {
            let from = lower(value)?;
            let to = upper(value)?;
            if from == to {
                Some(Matcher::Exact(from))
            } else {
                Some(Matcher::Range { from: Some(from), to: Some(to) })
            }
        }
        Some((a, b)) => {
            let from = if a.is_empty() { None } else { Some(lower(a)?) };
            let to = if b.is_empty() { None } else { Some(upper(b)?) };
            if from.is_none() && to.is_none() {
                return None;
            }
            Some(Matcher::Range { from, to })
        }
    }
}

/// Normalises a DA value to `YYYYMMDD`, accepting the retired `YYYY.MM.DD` form.
pub fn normalize_date(value: &str) -> Option<String> {
    let digits: String = value.trim().chars().filter(|c| *c != '.').collect();
    let ok = digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(digits)
}

/// Normalises a TM value to `HHMMSS.FFFFFF`, padding missing parts with zeros.
pub fn time_lower_bound(value: &str) -> Option<String> {
    pad_time(value, '0')
}

/// The latest time a partial TM value stands for: `10` means up to `105959.999999`.
pub fn time_upper_bound(value: &str) -> Option<String> {
    pad_time(value, '9')
}

fn pad_time(value: &str, fill: char) -> Option<String> {
    let value = value.trim();
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let whole: String = whole.chars().filter(|c| *c != ':').collect();
    let valid = !whole.is_empty()
        && whole.len() <= 6
        && whole.len().is_multiple_of(2)
        && fraction.len() <= 6
        && whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
        && (fraction.is_empty() || whole.len() == 6);
    if !valid {
        return None;
    }
    let mut out = whole;
    while out.len() < 6 {
        // Minutes and seconds top out at 59, not 99.
        out.push(if fill == '9' && out.len().is_multiple_of(2) { '5' } else { fill });
    }
    out.push('.');
    out.push_str(fraction);
    while out.len() < 13 {
        out.push(fill);
    }
    Some(out)
}

/// DICOM wildcard match: `*` matches any run of characters, `?` exactly one.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, vi));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            vi = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One key of a query: an attribute and how to match it. Keys with [`Matcher::Universal`]
/// are still listed, because a requested key must be returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryKey {
    pub attribute: Attribute,
    pub matcher: Matcher,
}

/// A query against one facility's index at one level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub level: QueryLevel,
    pub keys: Vec<QueryKey>,
    pub limit: Option<u32>,
    pub offset: u32,
    /// Match person names on their fuzzy keys ([`crate::names::fuzzy_name_key`]).
    pub fuzzy: bool,
}

impl Query {
    /// A query at `level` with these keys, unpaged and strict.
    pub fn new(level: QueryLevel, keys: Vec<QueryKey>) -> Self {
        Self { level, keys, limit: None, offset: 0, fuzzy: false }
    }
}

impl Query {
    /// The keys that constrain the result, at or above the query level.
    pub fn constraints(&self) -> impl Iterator<Item = (&Attribute, &Matcher)> {
        self.keys
            .iter()
            .filter(|k| k.matcher != Matcher::Universal && k.attribute.level() <= self.level)
            .map(|k| (&k.attribute, &k.matcher))
    }

    /// The same query from the first match to the end of its page: for merging several
    /// sources' results before cutting the page with [`Query::page`].
    pub fn through_page_end(&self) -> Query {
        Query { limit: self.limit.map(|l| l.saturating_add(self.offset)), offset: 0, ..self.clone() }
    }

    /// This query's page of results gathered by [`Query::through_page_end`].
    pub fn page<T>(&self, results: Vec<T>) -> Vec<T> {
        let page = results.into_iter().skip(self.offset as usize);
        page.take(self.limit.map_or(usize::MAX, |l| l as usize)).collect()
    }
}

/// One matching entity with the values of every attribute at or above its level.
/// Absent attributes are missing from the map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryMatch {
    pub values: BTreeMap<Attribute, String>,
    /// The Specific Character Set the values were received in, where known.
    pub character_set: Option<String>,
    /// Set when another facility shares the entity: its patient values are then the
    /// viewing facility's own patient's.
    pub shared: Option<crate::sharing::Shared>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(attribute: Attribute, raw: &str) -> Matcher {
        Matcher::parse(attribute, raw).expect("valid key")
    }

    #[test]
    fn empty_and_star_are_universal() {
        assert_eq!(parse(Attribute::PatientId, ""), Matcher::Universal);
        assert_eq!(parse(Attribute::PatientName, "*"), Matcher::Universal);
        assert_eq!(parse(Attribute::StudyDate, " "), Matcher::Universal);
    }

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        assert!(wildcard_match("YAMA*", "YAMADA^TAROU"));
        assert!(wildcard_match("*DA^T?ROU", "YAMADA^TAROU"));
        assert!(!wildcard_match("YAMA?", "YAMADA"));
        assert!(wildcard_match("山田*", "山田^太郎"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("?", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYbc"));
    }

    #[test]
    fn person_names_match_any_group_or_their_own() {
        let stored = Some("Yamada^Tarou=山田^太郎=やまだ^たろう");
        for query in ["ヤマダ*", "やまだ*", "山田*", "Yamada*", "yamada^tarou", "ﾔﾏﾀﾞ*"] {
            assert!(parse(Attribute::PatientName, query).matches(stored), "{query}");
        }
        assert!(!parse(Attribute::PatientName, "Tanaka*").matches(stored));
        assert!(parse(Attribute::PatientName, "*=山田*").matches(stored));
        assert!(!parse(Attribute::PatientName, "*=ヤマダ*").matches(stored), "group-wise: kana is not ideographic");
        assert_eq!(parse(Attribute::PatientName, "*=*=*"), Matcher::Universal);
        assert_eq!(parse(Attribute::PatientId, "ab1"), Matcher::Exact("ab1".into()));
    }

    #[test]
    fn date_ranges_in_every_form() {
        assert_eq!(parse(Attribute::StudyDate, "20240101"), Matcher::Exact("20240101".into()));
        assert_eq!(
            parse(Attribute::StudyDate, "20240101-20241231"),
            Matcher::Range { from: Some("20240101".into()), to: Some("20241231".into()) }
        );
        assert_eq!(
            parse(Attribute::StudyDate, "-2024.12.31"),
            Matcher::Range { from: None, to: Some("20241231".into()) }
        );
        assert_eq!(
            parse(Attribute::StudyDate, "20240101-"),
            Matcher::Range { from: Some("20240101".into()), to: None }
        );
        assert!(Matcher::parse(Attribute::StudyDate, "2024-01").is_err());
        assert!(Matcher::parse(Attribute::StudyDate, "-").is_err());
    }

    #[test]
    fn partial_times_cover_their_whole_span() {
        let m = parse(Attribute::StudyTime, "10-1030");
        assert_eq!(m, Matcher::Range { from: Some("100000.000000".into()), to: Some("103059.999999".into()) });
        assert!(m.matches(Some("103045.000000")));
        assert!(!m.matches(Some("103100.000000")));
        assert!(!m.matches(Some("095959.999999")));
        assert!(Matcher::parse(Attribute::StudyTime, "1.5").is_err());
    }

    #[test]
    fn uid_lists() {
        let m = parse(Attribute::StudyInstanceUid, "1.2.3\\1.2.4");
        assert!(m.matches(Some("1.2.4")));
        assert!(!m.matches(Some("1.2.5")));
        assert!(Matcher::parse(Attribute::StudyInstanceUid, "1.2\\x").is_err());
    }

    #[test]
    fn ranges_never_match_absent_values_but_universal_does() {
        let m = parse(Attribute::StudyDate, "20240101-");
        assert!(!m.matches(None));
        assert!(!m.matches(Some("")));
        assert!(Matcher::Universal.matches(None));
    }

    #[test]
    fn tags_round_trip() {
        for attribute in Attribute::ALL {
            let (g, e) = attribute.tag();
            assert_eq!(Attribute::from_tag(g, e), Some(*attribute));
        }
    }
}
