//! Text from outside (peers, discovered devices) made safe to keep and show: control characters
//! and bidirectional-override characters removed, length bounded.
//!
//! Invariant: [`clean`] never returns a C0/C1 control (NUL, BEL, ESC, DEL, U+0080–U+009F…) nor
//! a bidi embedding, override, isolate or mark (U+200E/F, U+202A–U+202E, U+2066–U+2069), and
//! never more than `max_chars` characters; it never panics.

/// Whether `c` may be shown: not a control character and not a bidi control.
fn shown(c: char) -> bool {
    !c.is_control()
        && !matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` without control or bidi characters, cut to `max_chars` characters.
pub fn clean(text: &str, max_chars: usize) -> String {
    text.chars().filter(|c| shown(*c)).take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn controls_and_bidi_are_removed() {
        assert_eq!(clean("Ga\0ra\u{7}ge\u{1b}[2J", 64), "Garage[2J");
        assert_eq!(clean("cam\u{202E}gpj.exe", 64), "camgpj.exe");
        assert_eq!(
            clean(
                "\u{200E}\u{200F}\u{202A}\u{202B}\u{202C}\u{202D}a\u{2066}\u{2067}\u{2068}\u{2069}",
                64
            ),
            "a"
        );
        assert_eq!(clean("x\u{85}y\u{9f}z\u{7f}", 64), "xyz");
        assert_eq!(clean("Tür ✓ 日本", 64), "Tür ✓ 日本");
        assert_eq!(clean(&"é".repeat(300), 200).chars().count(), 200);
    }
}
