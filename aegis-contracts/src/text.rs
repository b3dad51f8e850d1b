//! Which characters are invisible: shared by the engine's normalized view of text and by
//! the invisible-text guard, so both agree on what a reader cannot see.

/// The kind of an invisible or control character a reader cannot see (`zero_width`,
/// `bidi_control`, `tag_character`, `variation_selector`, `invisible_format`,
/// `control_character`), `None` for a visible one (tab, newline and carriage return are
/// visible). Private-use characters are not included: they render as something.
pub fn invisible_kind(c: char) -> Option<&'static str> {
    let u = c as u32;
    if u < 0x80 {
        return match u {
            0x09 | 0x0A | 0x0D => None,
            0x00..=0x1F | 0x7F => Some("control_character"),
            _ => None,
        };
    }
    Some(match u {
        0x80..=0x9F => "control_character",
        0x200B..=0x200D | 0x2060 | 0xFEFF | 0x180E => "zero_width",
        0x200E | 0x200F | 0x061C | 0x202A..=0x202E | 0x2066..=0x2069 => "bidi_control",
        0xE0000..=0xE007F => "tag_character",
        0xE0100..=0xE01EF => "variation_selector",
        0x00AD
        | 0x034F
        | 0x115F
        | 0x1160
        | 0x17B4
        | 0x17B5
        | 0x2061..=0x2065
        | 0x206A..=0x206F
        | 0x3164
        | 0xFFA0
        | 0x2800
        | 0xFFF9..=0xFFFB
        | 0x1D173..=0x1D17A
        | 0x1BCA0..=0x1BCA3
        | 0x13430..=0x1343F
        | 0x0600..=0x0605
        | 0x06DD
        | 0x070F
        | 0x0890
        | 0x0891
        | 0x08E2
        | 0x110BD
        | 0x110CD => "invisible_format",
        _ => return None,
    })
}
