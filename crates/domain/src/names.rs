//! Person names: component groups and the folded keys they are searched by.
//!
//! A DICOM person name has up to three component groups, `alphabetic=ideographic=phonetic`:
//! in Japan `Yamada^Tarou=山田^太郎=やまだ^たろう`. Each group is indexed under a strict key
//! and a fuzzy key, and a query is folded the same way before it is matched.
//!
//! - [`name_key`]: NFKC (full-width Latin to ASCII, half-width kana to full-width), hiragana
//!   to katakana, upper case, and both wave dashes (U+301C, U+FF5E) to `~`.
//! - [`fuzzy_name_key`]: also folds long vowels (ー, and ウ/オ/イ lengthening the kana before
//!   them, so サトー, サトウ and サト meet), enlarges small kana, folds the
//!   voiced variants ヴ/ブ, ヂ/ジ, ヅ/ズ and the old kana ヰ/イ, ヱ/エ, ヲ/オ, and folds the
//!   long vowels of romaji (OU, OO, UU, OH before a consonant) to one vowel.

use unicode_normalization::UnicodeNormalization;

/// The three component groups of a person name; absent groups are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonName {
    pub alphabetic: String,
    pub ideographic: String,
    pub phonetic: String,
}

impl PersonName {
    /// Splits a decoded PN value into its component groups.
    pub fn parse(value: &str) -> Self {
        let mut groups = value.splitn(3, '=').map(|g| g.trim_matches([' ', '\0']).to_owned());
        Self {
            alphabetic: groups.next().unwrap_or_default(),
            ideographic: groups.next().unwrap_or_default(),
            phonetic: groups.next().unwrap_or_default(),
        }
    }

    pub fn groups(&self) -> [&str; 3] {
        [&self.alphabetic, &self.ideographic, &self.phonetic]
    }
}

/// The strict search key of a name (or a name pattern: `*` and `?` pass through).
pub fn name_key(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.nfkc() {
        match c {
            // Hiragana (and its iteration marks) to katakana.
            'ぁ'..='ゖ' | 'ゝ' | 'ゞ' => out.push(char::from_u32(c as u32 + 0x60).unwrap_or(c)),
            '\u{301C}' | '\u{FF5E}' => out.push('~'),
            c => out.extend(c.to_uppercase()),
        }
    }
    out.trim().to_owned()
}

/// The fuzzy search key: the strict key with spelling variants folded away.
pub fn fuzzy_name_key(value: &str) -> String {
    let mut strict = name_key(value);
    // ヴ with a small vowel is one syllable: ヴィ is ビ, not ブイ.
    for (pair, single) in [("ヴァ", "バ"), ("ヴィ", "ビ"), ("ヴゥ", "ブ"), ("ヴェ", "ベ"), ("ヴォ", "ボ")]
    {
        strict = strict.replace(pair, single);
    }
    let mut enlarged = String::with_capacity(strict.len());
    for c in strict.chars() {
        let folded = match c {
            'ァ' => 'ア',
            'ィ' => 'イ',
            'ゥ' => 'ウ',
            'ェ' => 'エ',
            'ォ' => 'オ',
            'ッ' => 'ツ',
            'ャ' => 'ヤ',
            'ュ' => 'ユ',
            'ョ' => 'ヨ',
            'ヮ' => 'ワ',
            'ヵ' => 'カ',
            'ヶ' => 'ケ',
            'ヴ' => 'ブ',
            'ヂ' => 'ジ',
            'ヅ' => 'ズ',
            'ヰ' => 'イ',
            'ヱ' => 'エ',
            'ヲ' => 'オ',
            c => c,
        };
        enlarged.push(folded);
    }
    // Long vowels are written ー, or with the vowel kana: サトー, サトウ and サト are one name.
    let mut out = String::with_capacity(enlarged.len());
    let mut previous = None;
    for c in enlarged.chars() {
        let long_vowel = match (previous, c) {
            (_, 'ー') => true,
            (Some(p), 'ウ') => O_ROW.contains(p) || U_ROW.contains(p),
            (Some(p), 'オ') => O_ROW.contains(p),
            (Some(p), 'イ') => E_ROW.contains(p),
            _ => false,
        };
        if !long_vowel {
            out.push(c);
            previous = Some(c);
        }
    }
    fold_romaji_long_vowels(&out)
}

const O_ROW: &str = "オコソトノホモヨロゴゾドボポ";
const U_ROW: &str = "ウクスツヌフムユルグズブプ";
const E_ROW: &str = "エケセテネヘメレゲゼデベペ";

/// Satou, Satoo, Satoh and Sato are one name.
fn fold_romaji_long_vowels(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        out.push(c);
        let next = chars.get(i + 1).copied();
        let after = chars.get(i + 2).copied();
        let long = match (c, next) {
            ('O', Some('U')) | ('O', Some('O')) | ('U', Some('U')) => true,
            // OH is a long O unless a vowel follows (Ohashi keeps its H).
            ('O', Some('H')) => !matches!(after, Some('A' | 'I' | 'U' | 'E' | 'O')),
            _ => false,
        };
        i += if long { 2 } else { 1 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_split_on_equals() {
        let name = PersonName::parse("Yamada^Tarou=山田^太郎=やまだ^たろう");
        assert_eq!(name.groups(), ["Yamada^Tarou", "山田^太郎", "やまだ^たろう"]);
        assert_eq!(PersonName::parse("Yamada").groups(), ["Yamada", "", ""]);
        assert_eq!(PersonName::parse("=山田").groups(), ["", "山田", ""]);
    }

    #[test]
    fn strict_keys_fold_script_width_and_case() {
        assert_eq!(name_key("やまだ^たろう"), "ヤマダ^タロウ");
        assert_eq!(name_key("ﾔﾏﾀﾞ^ﾀﾛｳ"), "ヤマダ^タロウ");
        assert_eq!(name_key("ヤマダ*"), "ヤマダ*");
        assert_eq!(name_key("Ｙａｍａｄａ"), "YAMADA");
        assert_eq!(name_key("yamada*"), "YAMADA*");
        assert_eq!(name_key("山田"), "山田");
        assert_eq!(name_key("ミ\u{301C}"), name_key("ミ\u{FF5E}"));
        // Different spellings stay different under the strict key.
        assert_ne!(name_key("サトウ"), name_key("サトー"));
    }

    #[test]
    fn fuzzy_keys_fold_spelling_variants() {
        assert_eq!(fuzzy_name_key("サトー"), fuzzy_name_key("さと"));
        assert_eq!(fuzzy_name_key("さとう"), fuzzy_name_key("サトー"));
        assert_eq!(fuzzy_name_key("ユウコ"), fuzzy_name_key("ﾕｰｺ"));
        assert_eq!(fuzzy_name_key("セイコ"), fuzzy_name_key("セーコ"));
        assert_eq!(fuzzy_name_key("トオル"), fuzzy_name_key("トール"));
        assert_ne!(fuzzy_name_key("サトウ"), fuzzy_name_key("サイトウ"));
        assert_eq!(fuzzy_name_key("ヴィクトリア"), fuzzy_name_key("ビクトリア"));
        assert_eq!(fuzzy_name_key("チヂミ"), fuzzy_name_key("チジミ"));
        assert_eq!(fuzzy_name_key("ミツヅ"), fuzzy_name_key("ミツズ"));
        assert_eq!(fuzzy_name_key("キャシー"), fuzzy_name_key("キヤシ"));
        assert_eq!(fuzzy_name_key("Satou"), "SATO");
        assert_eq!(fuzzy_name_key("Satoh"), "SATO");
        assert_eq!(fuzzy_name_key("Ohashi"), "OHASHI");
        assert_eq!(fuzzy_name_key("Yuuko"), "YUKO");
    }
}
