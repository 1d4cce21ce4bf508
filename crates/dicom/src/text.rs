//! Decoding of text values to Rust strings.
//!
//! This covers the single-byte and UTF-8 repertoires. The Japanese ISO 2022 layer
//! (IR 13/87/159 with code extensions) replaces [`decode`] in the character-set work;
//! until then ISO 2022 text keeps its escape sequences.

/// Decodes a text value under the dataset's Specific Character Set and strips the padding
/// (trailing spaces and NULs, leading spaces).
pub fn decode(bytes: &[u8], specific_character_set: Option<&str>) -> String {
    let charset = specific_character_set.unwrap_or("");
    let text = if charset.contains("ISO_IR 192") {
        String::from_utf8_lossy(bytes).into_owned()
    } else if charset.contains("ISO_IR 100") {
        bytes.iter().map(|b| *b as char).collect()
    } else {
        match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => bytes.iter().map(|b| *b as char).collect(),
        }
    };
    text.trim_end_matches([' ', '\0']).trim_start_matches(' ').to_owned()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn strips_padding_and_decodes_repertoires() {
        assert_eq!(decode(b"CT ", None), "CT");
        assert_eq!(decode(b"1.2.3\0", None), "1.2.3");
        assert_eq!(decode(&[0x4D, 0xFC, 0x6C, 0x6C, 0x65, 0x72], Some("ISO_IR 100")), "Müller");
        assert_eq!(decode("山田^太郎".as_bytes(), Some("ISO_IR 192")), "山田^太郎");
    }
}
