//! Comparison levels: for each field, how two records agree, from exact to different.
//! Level 0 is always "missing" (a side has no value), which weighs nothing.

use serde::{Deserialize, Serialize};
use strsim::jaro_winkler;

use crate::keys::{BirthDate, Kana as KanaKey, Kanji as KanjiKey, Keys};

/// The fields a pair of records is compared on. A name part is one field for its kana and
/// kanji together: they spell the same name, so counting their agreement twice would make
/// two strangers called 佐藤 花子 look twice as alike as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    FamilyName,
    GivenName,
    BirthDate,
    Sex,
}

impl Field {
    pub const ALL: [Field; 4] = [Field::FamilyName, Field::GivenName, Field::BirthDate, Field::Sex];

    /// The names of this field's levels, "missing" first.
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Field::FamilyName | Field::GivenName => &[
                "missing",
                "exact",
                "same reading",
                "same reading, other kanji",
                "kana typo, same kanji",
                "same kanji, other reading",
                "similar kana",
                "different",
            ],
            Field::BirthDate => &["missing", "exact", "era swapped", "one digit or day/month swapped", "different"],
            Field::Sex => &["missing", "same", "different"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Field::FamilyName => "family name",
            Field::GivenName => "given name",
            Field::BirthDate => "birth date",
            Field::Sex => "sex",
        }
    }
}

/// One level per field, indexed like [`Field::ALL`].
pub type Comparison = [u8; 4];

pub const MISSING: u8 = 0;
pub const EXACT: u8 = 1;
/// The name level below exact: the same reading, spelled with variants.
pub const SAME_READING: u8 = 2;
/// The name levels at which the kana agree, where a common name says less.
pub const READING_AGREES: [u8; 3] = [EXACT, SAME_READING, 3];
const DIFFERENT_NAME: u8 = 7;

/// Jaro–Winkler similarity of loose kana keys from which a name counts as "similar". Japanese
/// names are short, so English thresholds (0.92/0.88) would call every one-kana typo
/// different; the level's own m and u say what "similar" is worth.
const SIMILAR_KANA: f64 = 0.8;

/// Compares two records field by field.
pub fn compare(a: &Keys, b: &Keys) -> Comparison {
    let mut family = name(&a.kana.family, &b.kana.family, &a.kanji.family, &b.kanji.family);
    let mut given = name(&a.kana.given, &b.kana.given, &a.kanji.given, &b.kanji.given);
    // Family and given swapped (romaji is often written given name first).
    if family > SAME_READING
        && given > SAME_READING
        && kana(&a.kana.family, &b.kana.given) <= Kana::Variant
        && kana(&a.kana.given, &b.kana.family) <= Kana::Variant
    {
        (family, given) = (SAME_READING, SAME_READING);
    }
    [
        family,
        given,
        birth_date(a.birth_date, b.birth_date),
        match (a.sex, b.sex) {
            (Some(x), Some(y)) if x == y => 1,
            (Some(_), Some(_)) => 2,
            _ => MISSING,
        },
    ]
}

/// How two kana spellings agree; `Missing` sorts last so that `<=` reads "at least".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kana {
    Exact,
    Variant,
    Similar,
    Different,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kanji {
    Exact,
    Folded,
    Different,
    Missing,
}

fn name(
    kana_a: &Option<KanaKey>,
    kana_b: &Option<KanaKey>,
    kanji_a: &Option<KanjiKey>,
    kanji_b: &Option<KanjiKey>,
) -> u8 {
    match (kana(kana_a, kana_b), kanji(kanji_a, kanji_b)) {
        (Kana::Missing, Kanji::Missing) => MISSING,
        (Kana::Exact, Kanji::Exact) => EXACT,
        (Kana::Exact | Kana::Variant, Kanji::Exact | Kanji::Folded | Kanji::Missing)
        | (Kana::Missing, Kanji::Exact | Kanji::Folded) => SAME_READING,
        (Kana::Exact | Kana::Variant, Kanji::Different) => 3,
        (Kana::Similar, Kanji::Exact | Kanji::Folded) => 4,
        (Kana::Different, Kanji::Exact | Kanji::Folded) => 5,
        (Kana::Similar, Kanji::Different | Kanji::Missing) => 6,
        (Kana::Different | Kana::Missing, _) => DIFFERENT_NAME,
    }
}

fn kana(a: &Option<KanaKey>, b: &Option<KanaKey>) -> Kana {
    let (Some(a), Some(b)) = (a, b) else { return Kana::Missing };
    let other_reading = |x: &KanaKey, y: &KanaKey| x.syllabic_n.as_ref() == Some(&y.loose);
    if a.strict == b.strict {
        Kana::Exact
    } else if a.loose == b.loose || other_reading(a, b) || other_reading(b, a) {
        Kana::Variant
    } else if jaro_winkler(&a.loose, &b.loose) >= SIMILAR_KANA {
        Kana::Similar
    } else {
        Kana::Different
    }
}

fn kanji(a: &Option<KanjiKey>, b: &Option<KanjiKey>) -> Kanji {
    match (a, b) {
        (Some(a), Some(b)) if a.exact == b.exact => Kanji::Exact,
        (Some(a), Some(b)) if a.folded == b.folded => Kanji::Folded,
        (Some(_), Some(_)) => Kanji::Different,
        _ => Kanji::Missing,
    }
}

/// The years a date moves when written in the wrong era (same era year, month and day):
/// 明治→大正 44, 大正→昭和 14, 平成→令和 30, 昭和→平成 63.
const ERA_SHIFTS: [u32; 4] = [14, 30, 44, 63];

fn birth_date(a: Option<BirthDate>, b: Option<BirthDate>) -> u8 {
    let (Some(a), Some(b)) = (a, b) else { return MISSING };
    if a == b {
        EXACT
    } else if a.month_day() == b.month_day() && ERA_SHIFTS.contains(&a.year().abs_diff(b.year())) {
        2
    } else if one_edit_apart(a, b) || (a.year() == b.year() && swapped_day_month(a) == b.month_day()) {
        3
    } else {
        4
    }
}

/// One digit different, or two adjacent digits transposed.
fn one_edit_apart(a: BirthDate, b: BirthDate) -> bool {
    let (a, b) = (format!("{:08}", a.0).into_bytes(), format!("{:08}", b.0).into_bytes());
    let differing: Vec<usize> = (0..8).filter(|&i| a[i] != b[i]).collect();
    match differing.as_slice() {
        [_] => true,
        [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
        _ => false,
    }
}

fn swapped_day_month(date: BirthDate) -> u32 {
    let (month, day) = (date.month_day() / 100, date.month_day() % 100);
    day * 100 + month
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Record;

    fn keys(name: &str, birth_date: &str, sex: &str) -> Keys {
        Keys::of(&Record { name: name.into(), birth_date: birth_date.into(), sex: sex.into() })
    }

    fn names(a: &str, b: &str) -> [u8; 2] {
        let levels = compare(&keys(a, "", ""), &keys(b, "", ""));
        [levels[0], levels[1]]
    }

    #[test]
    fn identical_records_are_exact_everywhere() {
        let a = keys("Yamada^Hanako=山田^花子=ヤマダ^ハナコ", "19800102", "F");
        assert_eq!(compare(&a, &a), [1, 1, 1, 1]);
    }

    #[test]
    fn kana_and_kanji_together_make_one_level_per_name_part() {
        // 髙/高 and a half-width family name; ユウコ/ユーコ.
        assert_eq!(names("=髙橋^優子=タカハシ^ユウコ", "=高橋^優子=ﾀｶﾊｼ^ユーコ"), [SAME_READING, SAME_READING]);
        // Homophones: 渡辺/渡部 are both ワタナベ.
        assert_eq!(names("=渡辺^健=ワタナベ^ケン", "=渡部^健=ワタナベ^ケン")[0], 3);
        // A kana typo under the same kanji, and another reading of the same kanji.
        assert_eq!(names("=渡辺^健=ワタナベ^ケン", "=渡辺^健=ワタナヘ^ケン")[0], 4);
        assert_eq!(names("=東海林^健=ショウジ^ケン", "=東海林^健=トウカイリン^ケン")[0], 5);
        // A kana typo and no kanji to check it by; another name altogether.
        assert_eq!(names("=^=ワタナベ^ケン", "=^=ワタナヘ^ケン")[0], 6);
        assert_eq!(names("=渡辺^健=ワタナベ^ケン", "=鈴木^健=スズキ^ケン")[0], 7);
        // Romaji read into kana meets the kana; one side without kanji.
        assert_eq!(names("Satou^Ken", "=佐藤^健=サトウ^ケン"), [SAME_READING, SAME_READING]);
        assert_eq!(names("Tanaka^Shinya", "=田中^慎也=タナカ^シンヤ"), [SAME_READING, SAME_READING]);
        assert_eq!(names("", "=佐藤^健=サトウ^ケン"), [MISSING, MISSING]);
    }

    #[test]
    fn swapped_family_and_given_names_count_as_the_same_reading() {
        assert_eq!(names("Yamada^Taro", "Taro^Yamada"), [SAME_READING, SAME_READING]);
    }

    #[test]
    fn birth_dates_know_era_swaps_typos_and_day_month_swaps() {
        let level = |a: &str, b: &str| compare(&keys("", a, ""), &keys("", b, ""))[2];
        assert_eq!(level("19550612", "19550612"), EXACT);
        // 昭和30年6月12日 written as 平成30年: 1955 → 2018.
        assert_eq!(level("19550612", "20180612"), 2);
        assert_eq!(level("19550612", "19550621"), 3);
        assert_eq!(level("19550612", "19550712"), 3);
        assert_eq!(level("19550612", "19551206"), 3);
        assert_eq!(level("19550612", "19560713"), 4);
        assert_eq!(level("19550612", ""), MISSING);
    }

    #[test]
    fn sex_is_missing_when_unknown() {
        let level = |a: &str, b: &str| compare(&keys("", "", a), &keys("", "", b))[3];
        assert_eq!(level("M", "F"), 2);
        assert_eq!(level("M", "O"), 2);
        assert_eq!(level("M", ""), MISSING);
    }
}
