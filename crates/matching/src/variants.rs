//! The 異体字 table: kanji that stand for the same character in a name (髙/高, 﨑/崎,
//! 邊/邉/辺), shipped as data in `data/kanji-variants.txt`, one class a line.

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("../data/kanji-variants.txt");

fn table() -> &'static HashMap<char, char> {
    static TABLE_MAP: OnceLock<HashMap<char, char>> = OnceLock::new();
    TABLE_MAP.get_or_init(|| {
        let mut map = HashMap::new();
        for line in TABLE.lines().filter(|l| !l.starts_with('#')) {
            let mut class = line.split_whitespace().filter_map(|c| c.chars().next());
            if let Some(folded) = class.next() {
                for variant in class {
                    map.insert(variant, folded);
                }
            }
        }
        map
    })
}

/// The folded form of one character: its class's first member, or itself.
pub fn fold(c: char) -> char {
    table().get(&c).copied().unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_fold_to_their_class() {
        assert_eq!(fold('髙'), '高');
        assert_eq!(fold('\u{FA11}'), '崎');
        assert_eq!(fold('邉'), '辺');
        assert_eq!(fold('邊'), '辺');
        assert_eq!(fold('山'), '山');
        // 斎 and 斉 are different characters (and different legal names); only their
        // old forms fold to them.
        assert_eq!(fold('齋'), '斎');
        assert_eq!(fold('齊'), '斉');
        assert_ne!(fold('斎'), fold('斉'));
    }

    #[test]
    fn no_character_is_in_two_classes() {
        let mut seen = std::collections::HashSet::new();
        for line in TABLE.lines().filter(|l| !l.starts_with('#')) {
            for c in line.split_whitespace() {
                assert!(seen.insert(c), "{c} appears twice");
                assert_eq!(c.chars().count(), 1, "{c} is not one character");
            }
        }
    }
}
