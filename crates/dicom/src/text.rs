//! Values that are ASCII by definition: UIDs, code strings, AE titles, dates.
//! Everything that may carry other characters goes through [`crate::charset`].

/// Reads an ASCII value and strips its padding (trailing spaces and NULs, leading spaces).
/// A stray non-ASCII byte becomes the Latin-1 character of the same code, so nothing is lost.
pub fn ascii(bytes: &[u8]) -> String {
    let text: String = bytes.iter().map(|b| *b as char).collect();
    text.trim_end_matches([' ', '\0']).trim_start_matches(' ').to_owned()
}

#[cfg(test)]
mod tests {
    use super::ascii;

    #[test]
    fn strips_padding() {
        assert_eq!(ascii(b"CT "), "CT");
        assert_eq!(ascii(b"1.2.3\0"), "1.2.3");
        assert_eq!(ascii(b"  STUDY"), "STUDY");
    }
}
