//! Terminal hygiene: the one place that decides which characters may reach a terminal or a reviewer's
//! screen unescaped.
//!
//! Names that come from the repository or from a signature (file paths, object names, signer names, commit
//! subjects, refusal reasons) are attacker-chosen. A control character (a newline, ESC, DEL, a C1 control)
//! can forge lines or drive the terminal; a bidirectional control (U+202A–U+202E, U+2066–U+2069, U+200E,
//! U+200F, U+061C) can make text read differently from what it is. [`is_hostile`] names them;
//! [`Esc`] writes a value with each of them escaped (`\n`, `\u{202e}`), on one line;
//! [`Lines`] does the same for multi-line reports, keeping only their line breaks.
//!
//! Intent paths with such characters are refused outright ([`crate::intent::check_path`]); everything the
//! CLI prints goes through [`Esc`] or [`Lines`].

use std::fmt;

/// Whether a character must never reach a terminal raw: any C0 or C1 control, DEL, or a bidirectional
/// formatting control.
pub fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
        )
}

/// The first hostile character of `s`, if any.
pub fn first_hostile(s: &str) -> Option<char> {
    s.chars().find(|&c| is_hostile(c))
}

/// The one escaping routine: `text` with every hostile character escaped (`\n`, `\r`, `\t`, `\u{…}`), except
/// a line feed when `keep_newlines` is set.
fn escape_into(out: &mut impl fmt::Write, text: &str, keep_newlines: bool) -> fmt::Result {
    let mut rest = text;
    while let Some(i) = rest.find(is_hostile) {
        out.write_str(&rest[..i])?;
        let c = rest[i..].chars().next().unwrap_or_default();
        match c {
            '\n' if keep_newlines => out.write_char('\n')?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c => write!(out, "\\u{{{:x}}}", c as u32)?,
        }
        rest = &rest[i + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// A value printed on one line with every hostile character escaped: `format!("{}", Esc(&path))`.
pub struct Esc<T>(pub T);

impl<T: fmt::Display> fmt::Display for Esc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        escape_into(f, &text, false)
    }
}

/// A multi-line report printed with every hostile character but its line feeds escaped. Fields that must
/// stay on one line inside such a report are written with [`Esc`] first.
pub struct Lines<T>(pub T);

impl<T: fmt::Display> fmt::Display for Lines<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        escape_into(f, &text, true)
    }
}

/// `text` escaped onto one line, as a `String`.
pub fn one_line(text: &str) -> String {
    Esc(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_characters_are_escaped_and_nothing_else_changes() {
        let hostile =
            "a\n---\nkind: Secret\u{1b}[31m\u{7f}\u{85}\u{202e}\u{2066}\u{200f}\u{061c}\r\tz";
        let one = Esc(hostile).to_string();
        assert_eq!(
            one,
            "a\\n---\\nkind: Secret\\u{1b}[31m\\u{7f}\\u{85}\\u{202e}\\u{2066}\\u{200f}\\u{61c}\\r\\tz"
        );
        assert!(one.chars().all(|c| !is_hostile(c)));
        let lines = Lines(hostile).to_string();
        assert_eq!(lines.lines().count(), 3);
        assert!(lines.chars().all(|c| c == '\n' || !is_hostile(c)));
        for plain in [
            "clusters/eu-1/namespaces/a/app.yaml",
            "Zoë <zoë@例え.jp>",
            "a\\b",
            "",
        ] {
            assert_eq!(Esc(plain).to_string(), plain);
            assert_eq!(Lines(plain).to_string(), plain);
        }
        for c in [
            '\u{0}', '\u{1f}', '\u{7f}', '\u{80}', '\u{9f}', '\u{202a}', '\u{2069}', '\u{200e}',
        ] {
            assert!(is_hostile(c), "{c:?}");
        }
        for c in [' ', '~', '\u{a0}', 'é', '\u{2000}', '\u{200d}'] {
            assert!(!is_hostile(c), "{c:?}");
        }
    }
}
