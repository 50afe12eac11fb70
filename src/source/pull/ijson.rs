//! Jobs are read as I-JSON (RFC 7493), so the bytes a job's signature covers (RFC 8785, [`super::jcs`]) describe
//! exactly the job the agent applies. Canonical JSON maps several texts to one: a number beyond a double's
//! precision is written as the double it rounds to (`9007199254740993` and `9007199254740992` are both
//! `9007199254740992`), and a parser keeps one of two members of the same name (serde_json the last). Either
//! lets two different jobs share one signature. So, anywhere in a job (the payload at any depth, and the job's
//! own members), the reader refuses:
//!
//! - a number that is not exactly the number its canonical form reads back as: beyond a double's range
//!   (`1e400`), beyond I-JSON's exact range ±(2^53 − 1) (`9007199254740993`, `1e300`), with more digits than a
//!   double holds (`1.00000000000000001`, `1e-400`), or negative zero (canonically `0`);
//! - a member name twice in one object (compared as decoded: `"a"` and `"\u0061"` are one name);
//! - a string that is not Unicode: a lone surrogate escape (`"\ud800"`) or bytes that are not UTF-8;
//! - nesting deeper than [`MAX_DEPTH`].
//!
//! A refused job is answered by id (`failed`, [`reasons`]); the other jobs of the answer are read as usual. The
//! numbers the agent applies are then the canonical ones: a number written with a fraction or an exponent whose
//! value is an integer (`1.0`, `1e2`) is applied as that integer, as canonical JSON writes it.

use std::collections::HashSet;

use serde_json::{Number, Value};

use super::jcs;

/// The deepest nesting of objects and arrays in a job (the job object is level 1). Kubernetes objects nest a
/// few tens of levels at most; serde_json's own limit (128) is never reached, so a deeper job is refused by id
/// instead of failing the whole answer.
pub const MAX_DEPTH: usize = 64;

/// The largest magnitude I-JSON numbers carry exactly: 2^53 − 1.
pub const MAX_EXACT: f64 = 9_007_199_254_740_991.0;

/// The `result.error` codes of the refusals (docs/pull.md#signed-jobs).
pub mod reasons {
    /// A number, member name or string with no one canonical form (RFC 7493).
    pub const NOT_I_JSON: &str = "JobNotIJson";
    /// Nested deeper than [`super::MAX_DEPTH`].
    pub const TOO_DEEP: &str = "JobTooDeep";
}

/// Why a job is refused, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    /// The JSON path from the job: `payload.spec.values.replicas`, `payload.items[2]`,
    /// `payload.metadata.labels["app.kubernetes.io/name"]`; `job` for the job itself.
    pub path: String,
    pub message: String,
}

/// One element of a job list: the job (or why it is refused) and its `id` when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub value: Result<Value, Problem>,
    pub id: Option<String>,
}

/// Read a `GET /api/agent/jobs` answer: `{"jobs": [...]}` (`null` or absent = none; other members ignored). `Err`
/// when it is not JSON, not such an object, or names a top-level member twice (one `jobs` would hide the other).
pub fn job_list(body: &[u8]) -> Result<Vec<Element>, String> {
    let mut s = Scan {
        b: body,
        i: 0,
        max: MAX_DEPTH,
    };
    let syntax = |s: &Scan, e: String| format!("not JSON: {e} at byte {}", s.i);
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(match s.peek() {
            Some(b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => {
                "the body is not a JSON object".into()
            }
            _ => syntax(&s, "expected a value".into()),
        });
    }
    let mut elements = Vec::new();
    let mut names = HashSet::new();
    let mut ignored = State::new(false);
    let r = s.members(|s, name| {
        if !names.insert(name.to_string()) {
            return Err(Stop::Answer(format!(
                "duplicate member {name:?} in the answer"
            )));
        }
        match (name, s.peek()) {
            ("jobs", Some(b'[')) => s.elements(&mut elements).map_err(Stop::Syntax),
            ("jobs", Some(b'n')) => s.value(1, &mut ignored).map_err(Stop::Syntax),
            ("jobs", _) => Err(Stop::Answer("jobs: not an array".into())),
            _ => s.value(1, &mut ignored).map_err(Stop::Syntax),
        }
    });
    match r {
        Ok(()) => {}
        Err(Stop::Syntax(e)) => return Err(syntax(&s, e)),
        Err(Stop::Answer(e)) => return Err(e),
    }
    s.ws();
    if s.i != body.len() {
        return Err(syntax(&s, "trailing characters".into()));
    }
    Ok(elements)
}

/// Read a whole document (one job, or a job list, as `sign-job` takes it) by the same rules; the nesting bound
/// leaves room for the list around the jobs ([`super::job::parse_job`] bounds each job exactly).
pub fn document(text: &[u8]) -> Result<Value, String> {
    let mut s = Scan {
        b: text,
        i: 0,
        max: MAX_DEPTH + 2,
    };
    let mut st = State::new(true);
    s.ws();
    let r = s.value(1, &mut st);
    s.ws();
    if let Err(e) = r {
        return Err(format!("not JSON: {e} at byte {}", s.i));
    }
    if s.i != text.len() {
        return Err(format!("not JSON: trailing characters at byte {}", s.i));
    }
    if let Some(p) = st.problem {
        return Err(format!("{}: {}: {}", p.reason, p.path, p.message));
    }
    serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))
}

/// Check the numbers of a parsed value and make each the one its canonical form reads back as (an integral
/// double becomes that integer), and bound its nesting. `path`: where `value` is, from the job.
pub fn exact_numbers(value: &mut Value, path: &mut Vec<Seg>) -> Result<(), Problem> {
    fn walk(v: &mut Value, path: &mut Vec<Seg>, depth: usize) -> Result<(), Problem> {
        match v {
            Value::Array(_) | Value::Object(_) if depth > MAX_DEPTH => Err(too_deep(path)),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(Seg::Index(i));
                    walk(item, path, depth + 1)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    path.push(Seg::Key(k.clone()));
                    walk(item, path, depth + 1)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Number(n) => {
                let exact = exact_number(n).map_err(|message| Problem {
                    reason: reasons::NOT_I_JSON,
                    path: render(path),
                    message,
                })?;
                *n = exact;
                Ok(())
            }
            _ => Ok(()),
        }
    }
    // A member of the job is at level 2 (the job object is level 1).
    walk(value, path, path.len() + 1)
}

/// The canonical number of `n`, or why it has none.
fn exact_number(n: &Number) -> Result<Number, String> {
    let beyond = |text: String| {
        format!(
            "{text} is beyond I-JSON's exact range ±(2^53 − 1): canonical JSON would sign the double it rounds \
             to, another number"
        )
    };
    if let Some(u) = n.as_u64() {
        return if u as f64 > MAX_EXACT {
            Err(beyond(u.to_string()))
        } else {
            Ok(n.clone())
        };
    }
    if let Some(i) = n.as_i64() {
        return if i.unsigned_abs() as f64 > MAX_EXACT {
            Err(beyond(i.to_string()))
        } else {
            Ok(n.clone())
        };
    }
    let f = n
        .as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("{n} is not a finite number"))?;
    if f.abs() > MAX_EXACT {
        return Err(beyond(n.to_string()));
    }
    if f == 0.0 && f.is_sign_negative() {
        return Err("-0 (negative zero) has the canonical form 0, another number".into());
    }
    if f.fract() == 0.0 {
        return Ok(Number::from(f as i64));
    }
    Ok(n.clone())
}

/// The problem with a number literal (JSON grammar already checked), if any.
fn check_literal(lit: &str) -> Option<String> {
    // Fast path: an integer of at most 15 digits is exactly a double and its own canonical form.
    let magnitude = lit.strip_prefix('-').unwrap_or(lit);
    if magnitude.len() <= 15 && magnitude.bytes().all(|b| b.is_ascii_digit()) && lit != "-0" {
        return None;
    }
    let f: f64 = lit.parse().ok()?;
    if !f.is_finite() {
        return Some(format!("{lit} is beyond the range of an IEEE 754 double"));
    }
    if f.abs() > MAX_EXACT {
        return Some(format!(
            "{lit} is beyond I-JSON's exact range ±(2^53 − 1): canonical JSON would sign the double it rounds \
             to, another number"
        ));
    }
    if f == 0.0 && lit.starts_with('-') {
        return Some(format!(
            "{lit} (negative zero) has the canonical form 0, another number"
        ));
    }
    let canonical = jcs::es6_number(f);
    if decimal(lit) != decimal(&canonical) {
        return Some(format!(
            "{lit} has more digits than an IEEE 754 double holds: its canonical form is {canonical}, another \
             number"
        ));
    }
    None
}

/// A decimal number text as (negative, significant digits, exponent): the value is `0.digits × 10^exponent`.
/// Zero is `(false, "", 0)`.
fn decimal(text: &str) -> (bool, String, i64) {
    let (negative, text) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, "0"),
    };
    let exp: i64 = exp
        .trim_start_matches('+')
        .parse()
        .unwrap_or(if exp.starts_with('-') {
            i64::MIN / 2
        } else {
            i64::MAX / 2
        });
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let lead = digits.len() - digits.trim_start_matches('0').len();
    let significant = digits.trim_matches('0');
    if significant.is_empty() {
        return (false, String::new(), 0);
    }
    let point = (int.len() as i64 - lead as i64).saturating_add(exp);
    (negative, significant.to_string(), point)
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// `payload.spec.items[2]`, `payload.metadata.labels["app.kubernetes.io/name"]`, `job` for the root.
pub fn render(path: &[Seg]) -> String {
    if path.is_empty() {
        return "job".into();
    }
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k)
                if !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Key(k) => out.push_str(&format!(
                "[{}]",
                serde_json::to_string(k).unwrap_or_default()
            )),
        }
    }
    out
}

fn too_deep(path: &[Seg]) -> Problem {
    Problem {
        reason: reasons::TOO_DEEP,
        path: render(path),
        message: format!("nested deeper than {MAX_DEPTH} levels (the bound of a job)"),
    }
}

/// What a scan of one job found: its first problem and its `id`.
struct State {
    check: bool,
    path: Vec<Seg>,
    problem: Option<Problem>,
    id: Option<String>,
}

impl State {
    fn new(check: bool) -> Self {
        Self {
            check,
            path: Vec::new(),
            problem: None,
            id: None,
        }
    }

    fn refuse(&mut self, reason: &'static str, message: String) {
        if self.check && self.problem.is_none() {
            self.problem = Some(Problem {
                reason,
                path: render(&self.path),
                message,
            });
        }
    }
}

/// Why a scan stopped: the text is not JSON, or the answer is unusable.
enum Stop {
    Syntax(String),
    Answer(String),
}

impl From<String> for Stop {
    fn from(e: String) -> Self {
        Stop::Syntax(e)
    }
}

/// A strict JSON scanner: it checks the grammar (so the end of each job is known), the I-JSON rules and the
/// nesting bound; serde_json then reads each job that passed.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    /// The deepest level a container may be at.
    max: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?}", c as char))
        }
    }

    /// The members of the object at the cursor: `each` reads the value after the name and colon.
    fn members<E: From<String>>(
        &mut self,
        mut each: impl FnMut(&mut Self, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(E::from("expected a member name".into()));
            }
            let (name, _) = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            each(self, &name)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(E::from("expected ',' or '}'".into())),
            }
        }
    }

    /// The elements of the job list at the cursor, each scanned on its own.
    fn elements(&mut self, out: &mut Vec<Element>) -> Result<(), String> {
        self.eat(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let start = self.i;
            let mut st = State::new(true);
            self.value(1, &mut st)?;
            let value = match st.problem {
                Some(p) => Err(p),
                None => serde_json::from_slice(&self.b[start..self.i]).map_err(|e| Problem {
                    reason: reasons::NOT_I_JSON,
                    path: "job".into(),
                    message: format!("not JSON: {e}"),
                }),
            };
            out.push(Element { value, id: st.id });
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err("expected ',' or ']'".into()),
            }
        }
    }

    /// One value at nesting level `depth` (a container at a level beyond the bound is skipped and refused).
    fn value(&mut self, depth: usize, st: &mut State) -> Result<(), String> {
        match self.peek() {
            Some(b'{' | b'[') if depth > self.max => {
                st.refuse(reasons::TOO_DEEP, too_deep(&st.path).message);
                self.skip()
            }
            Some(b'{') => {
                let mut names = HashSet::new();
                self.members(|s, name| {
                    st.path.push(Seg::Key(name.to_string()));
                    if !names.insert(name.to_string()) {
                        st.refuse(
                            reasons::NOT_I_JSON,
                            "the member is named more than once in its object (a duplicate key: which one \
                             applies depends on the parser)"
                                .into(),
                        );
                    }
                    let r = if depth == 1 && name == "id" && s.peek() == Some(b'"') {
                        let id = s.string_value(st)?;
                        st.id.get_or_insert(id);
                        Ok(())
                    } else {
                        s.value(depth + 1, st)
                    };
                    st.path.pop();
                    r
                })
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                let mut index = 0;
                loop {
                    self.ws();
                    st.path.push(Seg::Index(index));
                    let r = self.value(depth + 1, st);
                    st.path.pop();
                    r?;
                    index += 1;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err("expected ',' or ']'".into()),
                    }
                }
            }
            Some(b'"') => self.string_value(st).map(drop),
            Some(b'-' | b'0'..=b'9') => {
                let lit = self.number()?;
                if let Some(why) = check_literal(lit) {
                    st.refuse(reasons::NOT_I_JSON, why);
                }
                Ok(())
            }
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            _ => Err("expected a value".into()),
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(())
        } else {
            Err(format!("expected {word}"))
        }
    }

    /// A number literal (RFC 8259 grammar).
    fn number(&mut self) -> Result<&str, String> {
        let start = self.i;
        let digits = |s: &mut Self| {
            let from = s.i;
            while matches!(s.peek(), Some(b'0'..=b'9')) {
                s.i += 1;
            }
            s.i > from
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err("a number needs digits".into()),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !digits(self) {
                return Err("a fraction needs digits".into());
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return Err("an exponent needs digits".into());
            }
        }
        Ok(std::str::from_utf8(&self.b[start..self.i]).expect("ASCII"))
    }

    /// A string value, its problem (if any) recorded.
    fn string_value(&mut self, st: &mut State) -> Result<String, String> {
        let (s, problem) = self.string()?;
        if let Some(why) = problem {
            st.refuse(reasons::NOT_I_JSON, why);
        }
        Ok(s)
    }

    /// A string at the cursor, decoded; with why it is not Unicode text when it is not (then the decoded text
    /// has U+FFFD in place of what is wrong).
    fn string(&mut self) -> Result<(String, Option<String>), String> {
        self.eat(b'"')?;
        let mut out = String::new();
        let mut problem = None;
        loop {
            let run = self.i;
            while matches!(self.peek(), Some(c) if c != b'"' && c != b'\\' && c >= 0x20) {
                self.i += 1;
            }
            match std::str::from_utf8(&self.b[run..self.i]) {
                Ok(text) => out.push_str(text),
                Err(_) => {
                    out.push_str(&String::from_utf8_lossy(&self.b[run..self.i]));
                    problem.get_or_insert_with(|| "a string that is not UTF-8".to_string());
                }
            }
            match self.peek() {
                None => return Err("an unterminated string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok((out, problem));
                }
                Some(b'\\') => {
                    self.i += 1;
                    if let Some(why) = self.escape(&mut out)? {
                        problem.get_or_insert(why);
                    }
                }
                Some(c) => {
                    self.i += 1;
                    out.push(char::from(c));
                    problem.get_or_insert_with(|| {
                        format!("a control character (U+{c:04X}) unescaped in a string")
                    });
                }
            }
        }
    }

    /// One escape after its backslash, appended to `out`; a lone surrogate is a problem.
    fn escape(&mut self, out: &mut String) -> Result<Option<String>, String> {
        let c = self.peek().ok_or("an unterminated string")?;
        self.i += 1;
        out.push(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                if (0xDC00..0xE000).contains(&unit) {
                    out.push('\u{FFFD}');
                    return Ok(Some(format!(
                        "a lone surrogate \\u{unit:04x} in a string (not Unicode text)"
                    )));
                }
                if !(0xD800..0xDC00).contains(&unit) {
                    out.push(char::from_u32(unit).expect("not a surrogate"));
                    return Ok(None);
                }
                if self.b[self.i..].starts_with(b"\\u") {
                    let save = self.i;
                    self.i += 2;
                    let low = self.hex4()?;
                    if (0xDC00..0xE000).contains(&low) {
                        let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        out.push(char::from_u32(c).expect("a surrogate pair is a scalar value"));
                        return Ok(None);
                    }
                    self.i = save;
                }
                out.push('\u{FFFD}');
                return Ok(Some(format!(
                    "a lone surrogate \\u{unit:04x} in a string (not Unicode text)"
                )));
            }
            _ => return Err("an unknown escape".into()),
        });
        Ok(None)
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.b.get(self.i..self.i + 4).ok_or("a short \\u escape")?;
        let text = std::str::from_utf8(digits).map_err(|_| "a bad \\u escape")?;
        let unit = u32::from_str_radix(text, 16).map_err(|_| "a bad \\u escape")?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a bad \\u escape".into());
        }
        self.i += 4;
        Ok(unit)
    }

    /// Skip the container at the cursor without descending (it is refused anyway): brackets are counted, strings
    /// stepped over. No recursion, so any depth is safe.
    fn skip(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                b'"' => {
                    while let Some(c) = self.peek() {
                        self.i += 1;
                        match c {
                            b'\\' => self.i += 1,
                            b'"' => break,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Err("an unterminated array or object".into())
    }
}

#[cfg(test)]
mod tests;
