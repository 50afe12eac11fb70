//! RFC 8785 JSON Canonicalization Scheme (JCS): the byte string a signed job's signature covers.
//!
//! - object members sorted by their names' UTF-16 code units, no whitespace;
//! - strings with the minimal escapes of ECMAScript's `JSON.stringify` (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
//!   `\t`, other characters below U+0020 as `\u00xx`), everything else as UTF-8;
//! - numbers as ECMAScript's `Number.prototype.toString` formats the IEEE 754 double they denote (integers
//!   beyond 2^53 are rounded to a double, as every JCS implementation does; JCS has no other numbers). That
//!   rounding maps several numbers to one text, so jobs never reach it: [`super::ijson`] refuses every number that
//!   is not exactly its canonical form.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JcsError {
    /// serde_json cannot hold NaN or infinities, but an arbitrary-precision number could overflow a double.
    #[error("{0}: the number is not a finite IEEE 754 double")]
    NotFinite(String),
}

/// The canonical JSON text of `value`.
pub fn canonicalize(value: &Value) -> Result<String, JcsError> {
    let mut out = String::new();
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut String, value: &Value) -> Result<(), JcsError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

fn write_object(out: &mut String, map: &Map<String, Value>) -> Result<(), JcsError> {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push('{');
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, k);
        out.push(':');
        write_value(out, v)?;
    }
    out.push('}');
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Integers up to 2^53 are exact doubles and print as themselves; everything else goes through the double.
fn write_number(out: &mut String, n: &Number) -> Result<(), JcsError> {
    const EXACT: u64 = 1 << 53;
    if let Some(u) = n.as_u64()
        && u <= EXACT
    {
        let _ = write!(out, "{u}");
        return Ok(());
    }
    if let Some(i) = n.as_i64()
        && i.unsigned_abs() <= EXACT
    {
        let _ = write!(out, "{i}");
        return Ok(());
    }
    let f = n
        .as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| JcsError::NotFinite(n.to_string()))?;
    out.push_str(&es6_number(f));
    Ok(())
}

/// ECMAScript `Number.prototype.toString(10)` of a finite double (ECMA-262, Number::toString).
pub fn es6_number(f: f64) -> String {
    if f == 0.0 {
        return "0".to_string(); // -0 too
    }
    let mut out = String::new();
    if f < 0.0 {
        out.push('-');
    }
    let (digits, n) = shortest_digits(f.abs());
    let k = digits.len() as i32;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n - 1 < 0 { '-' } else { '+' });
        let _ = write!(out, "{}", (n - 1).abs());
    }
    out
}

/// The shortest digits `d1…dk` and exponent `n` with `f = 0.d1…dk × 10^n` that read back as `f`; of two such,
/// the closer to `f`, and of two equally close, the one whose last digit is even (ECMA-262's rule). Rust's `{:e}`
/// gives the shortest, closest digits but breaks an exact tie upwards, so ties are found from the exact decimal
/// expansion (every double has one of at most 767 significant digits) and settled to the even candidate.
fn shortest_digits(f: f64) -> (String, i32) {
    let split = |text: &str| {
        let (mantissa, exp) = text.split_once('e').expect("{:e} output has an exponent");
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let n = exp.parse::<i32>().expect("{:e} exponent is an integer") + 1;
        (digits, n)
    };
    let (digits, n) = split(&format!("{f:e}"));
    let k = digits.len();
    // A tie needs an exact expansion of k + 1 <= 18 digits ending in 5: 19 correctly rounded digits show every
    // such expansion, so the full one (slow: up to 767 digits) is only computed when they look like one.
    let (near, _) = split(&format!("{f:.18e}"));
    let near = near.trim_end_matches('0');
    if near.len() != k + 1 || !near.ends_with('5') {
        return (digits, n);
    }
    let (exact, exact_n) = split(&format!("{f:.767e}"));
    let exact = exact.trim_end_matches('0');
    if exact.len() != k + 1 || !exact.ends_with('5') {
        return (digits, n);
    }
    // f lies exactly half-way between low = exact[..k] and low + 1 (in the last place): take the even one.
    let low = &exact[..k];
    if low.as_bytes()[k - 1] % 2 == 0 {
        return (low.trim_end_matches('0').to_string(), exact_n);
    }
    let mut high = low.as_bytes().to_vec();
    let mut i = k;
    loop {
        if i == 0 {
            high.insert(0, b'1');
            let high = String::from_utf8(high).expect("ASCII digits");
            return (high.trim_end_matches('0').to_string(), exact_n + 1);
        }
        i -= 1;
        if high[i] == b'9' {
            high[i] = b'0';
        } else {
            high[i] += 1;
            break;
        }
    }
    let high = String::from_utf8(high).expect("ASCII digits");
    (high.trim_end_matches('0').to_string(), exact_n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The number examples of RFC 8785 appendix B (IEEE 754 bit patterns and their canonical text).
    #[test]
    fn numbers_as_rfc_8785_appendix_b() {
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
            // Exact ties (…730.25, …709.75): the even candidate, found by the slow path.
            (0x43160f4d5caf72c9, "1552318607383730.2"),
            (0x4317ad2cd390d1d7, "1666083125998709.8"),
        ];
        for (bits, want) in cases {
            assert_eq!(es6_number(f64::from_bits(*bits)), *want, "{bits:#018x}");
        }
    }

    /// RFC 8785 section 3.2.3's sorting example and section 3.2.2.2's string escapes.
    #[test]
    fn members_sorted_by_utf16_and_strings_minimally_escaped() {
        let v: Value = serde_json::from_str(
            r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
                "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let keys: Vec<String> =
            serde_json::from_str::<serde_json::Map<String, Value>>(&canonicalize(&v).unwrap())
                .unwrap()
                .into_iter()
                .map(|(_, v)| v.as_str().unwrap().to_string())
                .collect();
        // preserve_order keeps the canonical order when read back.
        assert_eq!(
            keys,
            [
                "Carriage Return",
                "One",
                "Control",
                "Latin Small Letter O With Diaeresis",
                "Euro Sign",
                "Emoji: Grinning Face",
                "Hebrew Letter Dalet With Dagesh"
            ]
        );
        // RFC 8785 section 3.2.2's example input, as text.
        let v: Value = serde_json::from_str(
            r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
                "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}"#,
        )
        .unwrap();
        assert_eq!(
            canonicalize(&v).unwrap(),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\
             \"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    #[test]
    fn integers_print_exactly_up_to_2_pow_53_then_as_doubles() {
        assert_eq!(canonicalize(&json!(-42)).unwrap(), "-42");
        assert_eq!(
            canonicalize(&json!(9007199254740993u64)).unwrap(),
            "9007199254740992"
        );
        assert_eq!(
            canonicalize(&json!(u64::MAX)).unwrap(),
            "18446744073709552000"
        );
        assert_eq!(canonicalize(&json!(1e21)).unwrap(), "1e+21");
    }
}
