//! Non-ASCII characters in atoms: approximations of the Unicode identifier
//! tables Elixir's tokenizer uses (letter classes less compatibility
//! characters, a coarse script check by Unicode block, and an NFC check for
//! common precomposed letters).

pub(super) fn unicode_upper(c: char) -> bool {
    !c.is_ascii() && c.is_uppercase() && !restricted(c)
}

pub(super) fn unicode_start(c: char) -> bool {
    !c.is_ascii()
        && c.is_alphabetic()
        && !c.is_uppercase()
        && !is_combining_mark(c)
        && !restricted(c)
}

pub(super) fn unicode_continue(c: char) -> bool {
    !c.is_ascii() && (c.is_alphanumeric() || is_combining_mark(c)) && !restricted(c)
}

/// Compatibility characters Elixir does not allow in identifiers (ligatures,
/// digraphs, superscripts, letterlike symbols, Roman numerals, fullwidth
/// forms): a small part of Unicode's restricted identifier characters.
fn restricted(c: char) -> bool {
    matches!(c as u32,
        0x00AA | 0x00B2 | 0x00B3 | 0x00B9 | 0x00BA | 0x00BC..=0x00BE | 0x0132 | 0x0133
        | 0x013F | 0x0140 | 0x0149 | 0x017F | 0x01C4..=0x01CC | 0x01F1..=0x01F3
        | 0x2070..=0x209F | 0x2100..=0x218F | 0x2460..=0x24FF | 0xFB00..=0xFB4F
        | 0xFF00..=0xFFEF)
}

fn is_combining_mark(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x0610..=0x061A | 0x064B..=0x065F
        | 0x0900..=0x0903 | 0x093A..=0x093C | 0x093E..=0x094F | 0x0951..=0x0957
        | 0x0962 | 0x0963 | 0x0E31 | 0x0E34..=0x0E3A | 0x0E47..=0x0E4E | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0x3099 | 0x309A | 0xFE20..=0xFE2F)
}

/// Whether the atom is in NFC form, as far as a base letter followed by a
/// combining mark that has a precomposed form tells (only ASCII, basic Greek
/// and basic Cyrillic bases are known).
pub(super) fn looks_nfc(chars: &[char]) -> bool {
    !chars.windows(2).any(|w| composes(w[0], w[1]))
}

fn composes(base: char, mark: char) -> bool {
    let bases = match mark as u32 {
        0x300 => "AEINOUWYaeinouwyΑΕΗΙΟΥΩαεηιουωЕИеи",
        0x301 => "ACEGIKLMNOPRSUWYZacegiklmnoprsuwyzΑΕΗΙΟΥΩαεηιουωГКгк",
        0x302 => "ACEGHIJOSUWYZaceghijosuwyz",
        0x303 => "AEINOUVYaeinouvy",
        0x304 => "AEGIOUYaegiouyΑΙΥαιυИУиу",
        0x306 => "AEGIOUaegiouΑΙΥαιυАЕЖИУаежиу",
        0x307 => "ABCDEFGHIMNOPRSTWXYZabcdefghmnoprstwxyz",
        0x308 => "AEHIOUWXYaehiotuwxyΙΥιυАЕЖЗИОУЧЫЭаежзиоучыэ",
        0x309 => "AEIOUYaeiouy",
        0x30A => "AUauwy",
        0x30B => "OUouУу",
        0x30C => "ACDEGHIKLNORSTUZacdeghijklnorstuz",
        0x30F | 0x311 => "AEIORUaeioru",
        0x313 => "ΑΕΗΙΟΩαεηιορυω",
        0x314 => "ΑΕΗΙΟΡΥΩαεηιορυω",
        0x31B => "OUou",
        0x323 => "ABDEHIKLMNORSTUVWYZabdehiklmnorstuvwyz",
        0x324 => "Uu",
        0x325 => "Aa",
        0x326 => "STst",
        0x327 => "CDEGHKLNRSTcdeghklnrst",
        0x328 => "AEIOUaeiou",
        0x32D => "DELNTUdelntu",
        0x32E => "Hh",
        0x330 => "EIUeiu",
        0x331 => "BDKLNRTZbdhklnrtz",
        0x342 => "αηιυω",
        0x345 => "ΑΗΩάήαηω",
        _ => return false,
    };
    bases.contains(base)
}

mod script {
    pub const LATIN: u32 = 1 << 0;
    pub const GREEK: u32 = 1 << 1;
    pub const CYRILLIC: u32 = 1 << 2;
    pub const ARMENIAN: u32 = 1 << 3;
    pub const HEBREW: u32 = 1 << 4;
    pub const ARABIC: u32 = 1 << 5;
    pub const DEVANAGARI: u32 = 1 << 6;
    pub const THAI: u32 = 1 << 7;
    pub const GEORGIAN: u32 = 1 << 8;
    pub const HANGUL: u32 = 1 << 9;
    pub const HIRAGANA: u32 = 1 << 10;
    pub const KATAKANA: u32 = 1 << 11;
    pub const BOPOMOFO: u32 = 1 << 12;
    pub const HAN: u32 = 1 << 13;
    pub const HAN_BOPOMOFO: u32 = 1 << 14;
    pub const JAPANESE: u32 = 1 << 15;
    pub const KOREAN: u32 = 1 << 16;
    /// Common/inherited or unknown: compatible with every script.
    pub const ALL: u32 = u32::MAX;
}

/// The (augmented) script set of a character, coarsely by Unicode block.
fn script_set(c: char) -> u32 {
    use script::*;
    if c.is_ascii_alphabetic() {
        return LATIN;
    }
    match c as u32 {
        0x00C0..=0x02AF | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xAB30..=0xAB6F => {
            if c.is_alphabetic() {
                LATIN
            } else {
                ALL
            }
        }
        // MICRO SIGN normalizes to GREEK SMALL LETTER MU, which Elixir lets
        // mix with any script.
        0x03BC => ALL,
        0x0370..=0x03FF | 0x1F00..=0x1FFF => GREEK,
        0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => CYRILLIC,
        0x0530..=0x058F => ARMENIAN,
        0x0590..=0x05FF => HEBREW,
        0x0600..=0x06FF | 0x0750..=0x077F => ARABIC,
        0x0900..=0x097F => DEVANAGARI,
        0x0E00..=0x0E7F => THAI,
        0x10A0..=0x10FF => GEORGIAN,
        0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF => HANGUL | KOREAN,
        0x3040..=0x309F => HIRAGANA | JAPANESE,
        0x30A0..=0x30FF | 0x31F0..=0x31FF => KATAKANA | JAPANESE,
        0x3100..=0x312F => BOPOMOFO | HAN_BOPOMOFO,
        0x3005..=0x3007
        | 0x3021..=0x3029
        | 0x3038..=0x303B
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x20000..=0x2FFFF => HAN | HAN_BOPOMOFO | JAPANESE | KOREAN,
        _ => ALL,
    }
}

/// Elixir rejects identifiers mixing scripts unless they fit one of the
/// "highly restrictive" combinations (Latin with Japanese, Chinese or Korean).
pub(super) fn single_script(chars: &[char]) -> bool {
    use script::*;
    let sets: Vec<u32> = chars
        .iter()
        .map(|&c| {
            if c.is_ascii_digit() || c == '_' {
                ALL
            } else {
                script_set(c)
            }
        })
        .collect();
    if sets.iter().fold(ALL, |acc, s| acc & s) != 0 {
        return true;
    }
    [LATIN | JAPANESE, LATIN | HAN_BOPOMOFO, LATIN | KOREAN]
        .iter()
        .any(|r| sets.iter().all(|s| s & r != 0))
}
