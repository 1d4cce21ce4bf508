//! Storage tiers and the lifecycle policy: which studies go cold, and how old the studies
//! people retrieve are. Dates are DICOM `YYYYMMDD` keys; times are Unix seconds, passed in.

use serde::Serialize;

use crate::model::BlobHash;

/// A stored blob and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub blob: BlobHash,
    pub size: u64,
}

/// Where a blob's bytes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// On local disk: ONLINE.
    Hot,
    /// In the cold bucket, recalled on demand: NEARLINE.
    Cold,
}

/// Instances and bytes of one facility on one tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierStats {
    pub facility: String,
    pub tier: Tier,
    pub instances: u64,
    pub bytes: u64,
}

/// Which studies of a facility go cold: those dated before `dated_before`, and (if set)
/// those nobody has retrieved since `idle_since` (counting from when they arrived).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColdRule {
    pub dated_before: Option<String>,
    pub idle_since: Option<i64>,
}

impl ColdRule {
    /// The rule at time `now` for "older than `years`" and, optionally, "not retrieved for
    /// `idle_days`".
    pub fn at(now: i64, years: Option<u32>, idle_days: Option<u32>) -> ColdRule {
        ColdRule {
            dated_before: years.map(|years| years_before(now, years)),
            idle_since: idle_days.map(|days| now - i64::from(days) * 86_400),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.dated_before.is_none() && self.idle_since.is_none()
    }
}

/// One retrieval of a study, with its age (days from the study date to the retrieval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub facility: String,
    pub study_uid: String,
    pub age_days: Option<i64>,
    pub at: i64,
}

/// The study-age buckets of the access report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum AgeBucket {
    #[serde(rename = "<1y")]
    UnderOneYear,
    #[serde(rename = "1-3y")]
    OneToThreeYears,
    #[serde(rename = "3-5y")]
    ThreeToFiveYears,
    #[serde(rename = ">5y")]
    OverFiveYears,
    /// The study has no valid date.
    #[serde(rename = "undated")]
    Undated,
}

impl AgeBucket {
    pub const ALL: [AgeBucket; 5] = [
        AgeBucket::UnderOneYear,
        AgeBucket::OneToThreeYears,
        AgeBucket::ThreeToFiveYears,
        AgeBucket::OverFiveYears,
        AgeBucket::Undated,
    ];

    /// The bucket's upper bound in days (exclusive); `None` for the open-ended ones. A year
    /// is 365.25 days, so that leap days do not move a study across a bound.
    pub fn below_days(self) -> Option<i64> {
        match self {
            AgeBucket::UnderOneYear => Some(365),
            AgeBucket::OneToThreeYears => Some(1096),
            AgeBucket::ThreeToFiveYears => Some(1826),
            AgeBucket::OverFiveYears | AgeBucket::Undated => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AgeBucket::UnderOneYear => "<1y",
            AgeBucket::OneToThreeYears => "1-3y",
            AgeBucket::ThreeToFiveYears => "3-5y",
            AgeBucket::OverFiveYears => ">5y",
            AgeBucket::Undated => "undated",
        }
    }

    pub fn parse(label: &str) -> Option<AgeBucket> {
        AgeBucket::ALL.into_iter().find(|bucket| bucket.label() == label)
    }
}

/// Retrievals of one facility in one age bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessCount {
    pub facility: String,
    pub bucket: AgeBucket,
    pub retrievals: u64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The `YYYYMMDD` key of the (UTC) day of a Unix time.
pub fn date_key(unix: i64) -> String {
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    format!("{year:04}{month:02}{day:02}")
}

/// Days since 1970-01-01 of a `YYYYMMDD` key, if it is a real date.
fn day_number(key: &str) -> Option<i64> {
    if key.len() != 8 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, month, day) = (key[..4].parse().ok()?, key[4..6].parse().ok()?, key[6..].parse().ok()?);
    let days = days_from_civil(year, month, day);
    (civil_from_days(days) == (year, month, day)).then_some(days)
}

/// The same calendar day `years` earlier (29 February becomes 1 March).
pub fn years_before(now: i64, years: u32) -> String {
    let (year, month, day) = civil_from_days(now.div_euclid(86_400));
    let year = year - i64::from(years);
    let days = days_from_civil(year, month, day);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}{month:02}{day:02}")
}

/// Japan Standard Time's offset from UTC, in seconds (it has no daylight saving).
const JST: i64 = 9 * 3600;

/// The Unix time at which a `YYYYMMDD` or `YYYY-MM-DD` day ends in Japan Standard Time:
/// how people give a publication's last day.
pub fn end_of_day_in_japan(date: &str) -> Option<i64> {
    if !date.is_ascii() {
        return None;
    }
    let key: String = date.chars().filter(|c| *c != '-').collect();
    let dashes_ok = date.len() == 8 || (date.len() == 10 && &date[4..5] == "-" && &date[7..8] == "-");
    Some((day_number(&key).filter(|_| dashes_ok)? + 1) * 86_400 - JST)
}

/// The Unix time of a DICOM date-time (`YYYYMMDD[HH[MM[SS[.F]]]][±HHMM]`), read in Japan
/// Standard Time unless it carries its own offset (a DT without one is local time, and the
/// hub's devices are in Japan).
pub fn date_time_in_japan(value: &str) -> Option<i64> {
    let value = value.trim();
    let (local, offset) = match value.find(['+', '-']) {
        Some(at) => {
            let zone = value.get(at + 1..)?;
            if zone.len() != 4 || !zone.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let seconds = zone[..2].parse::<i64>().ok()? * 3600 + zone[2..].parse::<i64>().ok()? * 60;
            (&value[..at], if value.as_bytes()[at] == b'-' { -seconds } else { seconds })
        }
        None => (value, JST),
    };
    let whole = local.split('.').next()?;
    if whole.len() < 8 || whole.len() % 2 != 0 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let day = day_number(&whole[..8])?;
    let part = |range: std::ops::Range<usize>, limit: i64| -> Option<i64> {
        match whole.get(range) {
            Some(digits) => digits.parse().ok().filter(|v| *v < limit),
            None => Some(0),
        }
    };
    let (hours, minutes, seconds) = (part(8..10, 24)?, part(10..12, 60)?, part(12..14, 61)?);
    Some(day * 86_400 + hours * 3600 + minutes * 60 + seconds - offset)
}

/// The `YYYYMMDD` key of the day in Japan that the second before `end` belongs to: the
/// last day of a period that ends at `end`, as [`end_of_day_in_japan`] reads it back.
pub fn last_day_in_japan(end: i64) -> String {
    day_in_japan(end - 1)
}

/// The `YYYYMMDD` key of the day in Japan that a Unix time falls on.
pub fn day_in_japan(unix: i64) -> String {
    date_key(unix + JST)
}

/// Days from a study date key to a Unix time; `None` for a missing or invalid date.
pub fn age_days(study_date_key: Option<&str>, now: i64) -> Option<i64> {
    let study = day_number(study_date_key?)?;
    Some(now.div_euclid(86_400) - study)
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_times_are_japan_time_unless_they_say_otherwise() {
        use super::date_time_in_japan as at;
        assert_eq!(at("20260301101500"), Some(1_772_327_700), "10:15 JST is 01:15 UTC");
        assert_eq!(at("20260301011500+0000"), Some(1_772_327_700));
        assert_eq!(at("20260301101500.123456"), Some(1_772_327_700));
        assert_eq!(at("20260301"), Some(1_772_290_800));
        assert_eq!(at("20260230"), None);
        assert_eq!(at("2026030125"), None);
        assert_eq!(at(""), None);
    }

    use super::*;

    /// 2026-11-21T12:00:00Z.
    const NOW: i64 = 1_795_262_400;

    #[test]
    fn days_end_in_japan() {
        // 2026-11-22 24:00 JST is 2026-11-22 15:00 UTC.
        assert_eq!(end_of_day_in_japan("2026-11-22"), Some(1_795_359_600));
        assert_eq!(end_of_day_in_japan("20261122"), Some(1_795_359_600));
        assert_eq!(end_of_day_in_japan("2026-02-30"), None);
        assert_eq!(end_of_day_in_japan("2026/11/22"), None);
        assert_eq!(end_of_day_in_japan("2026－112"), None, "10 bytes, not ASCII");
        assert_eq!(last_day_in_japan(1_795_359_600), "20261122");
    }

    #[test]
    fn dates_round_trip_through_day_numbers() {
        assert_eq!(date_key(0), "19700101");
        assert_eq!(date_key(NOW), "20261121");
        assert_eq!(date_key(951_782_400), "20000229");
        assert_eq!(day_number("20000229"), Some(11_016));
        assert_eq!(day_number("20010229"), None, "not a leap year");
        assert_eq!(day_number("2001-02-0"), None);
    }

    #[test]
    fn three_years_before_is_the_same_calendar_day() {
        assert_eq!(years_before(NOW, 3), "20231121");
        let leap_day = 1_709_208_000; // 2024-02-29T12:00Z
        assert_eq!(years_before(leap_day, 1), "20230301");
    }

    #[test]
    fn ages_fall_into_their_buckets() {
        assert_eq!(age_days(Some("20261121"), NOW), Some(0));
        assert_eq!(age_days(Some("20251121"), NOW), Some(365));
        assert_eq!(age_days(None, NOW), None);
        assert_eq!(age_days(Some("garbage!"), NOW), None);
        assert_eq!(AgeBucket::parse("3-5y"), Some(AgeBucket::ThreeToFiveYears));
    }

    #[test]
    fn the_default_rule_is_three_years_by_study_date() {
        let rule = ColdRule::at(NOW, Some(3), None);
        assert_eq!(rule.dated_before.as_deref(), Some("20231121"));
        assert!(rule.idle_since.is_none());
        assert!(ColdRule::at(NOW, None, None).is_empty());
        assert_eq!(ColdRule::at(NOW, None, Some(30)).idle_since, Some(NOW - 30 * 86_400));
    }
}
