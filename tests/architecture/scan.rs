//! The scanner of tests/architecture.rs: Rust source to tokens (comments, strings, chars, lifetimes and numbers
//! skipped), the paths a file names (use trees expanded; `crate::`, `super::` and `self::` paths in code), its
//! public item names, and the length of every function from its `fn` line to its closing brace.

use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------------------------
// Tokens: identifiers and punctuation with their line; comments, strings, chars, lifetimes and numbers skipped.

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    /// `::`
    Sep,
    /// `->` and `=>` (kept whole so that their `>` does not close a generic list)
    Arrow,
    Punct(char),
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) line: usize,
}

pub(crate) fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

pub(crate) fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(crate) struct Lexer {
    pub(crate) chars: Vec<char>,
    pub(crate) at: usize,
    pub(crate) line: usize,
    pub(crate) out: Vec<Token>,
}

impl Lexer {
    fn peek(&self, n: usize) -> Option<char> {
        self.chars.get(self.at + n).copied()
    }

    /// Advances one char, counting lines.
    fn bump(&mut self) {
        if self.peek(0) == Some('\n') {
            self.line += 1;
        }
        self.at += 1;
    }

    fn skip_line_comment(&mut self) {
        while let Some(c) = self.peek(0) {
            if c == '\n' {
                return;
            }
            self.bump();
        }
    }

    fn skip_block_comment(&mut self) {
        let mut depth = 0usize;
        while let Some(c) = self.peek(0) {
            if c == '/' && self.peek(1) == Some('*') {
                depth += 1;
                self.bump();
            } else if c == '*' && self.peek(1) == Some('/') {
                depth -= 1;
                self.bump();
                if depth == 0 {
                    self.bump();
                    return;
                }
            }
            self.bump();
        }
    }

    /// A "…" string with escapes; `at` is on the opening quote.
    fn skip_string(&mut self) {
        self.bump();
        while let Some(c) = self.peek(0) {
            match c {
                '\\' => {
                    self.bump();
                    self.bump();
                }
                '"' => {
                    self.bump();
                    return;
                }
                _ => self.bump(),
            }
        }
    }

    /// A raw string: `at` is on the first `#` or the quote after the `r`.
    fn skip_raw_string(&mut self) {
        let mut hashes = 0;
        while self.peek(0) == Some('#') {
            hashes += 1;
            self.bump();
        }
        self.bump(); // the opening quote
        while let Some(c) = self.peek(0) {
            self.bump();
            if c == '"' && (0..hashes).all(|i| self.peek(i) == Some('#')) {
                for _ in 0..hashes {
                    self.bump();
                }
                return;
            }
        }
    }

    /// A char literal or a lifetime; `at` is on the quote.
    fn skip_quote(&mut self) {
        if self.peek(1) == Some('\\') {
            self.bump();
            while let Some(c) = self.peek(0) {
                self.bump();
                if c == '\\' {
                    self.bump();
                } else if c == '\'' {
                    return;
                }
            }
        } else if self.peek(2) == Some('\'') {
            for _ in 0..3 {
                self.bump();
            }
        } else {
            // A lifetime or a label: its name is skipped too, so `'static` is no identifier.
            self.bump();
            while self.peek(0).is_some_and(is_ident_char) {
                self.bump();
            }
        }
    }

    /// An identifier, or a string prefix (`r"`, `r#"`, `b"`, `br"`, `c"`, `b'`) that starts a literal.
    fn ident_or_literal(&mut self) {
        let start = self.at;
        while self.peek(0).is_some_and(is_ident_char) {
            self.bump();
        }
        let word: String = self.chars[start..self.at].iter().collect();
        let next = self.peek(0);
        let raw = matches!(word.as_str(), "r" | "br" | "cr");
        if raw
            && (next == Some('"') || (next == Some('#') && matches!(self.peek(1), Some('"' | '#'))))
        {
            self.skip_raw_string();
        } else if matches!(word.as_str(), "b" | "c") && next == Some('"') {
            self.skip_string();
        } else if word == "b" && next == Some('\'') {
            self.skip_quote();
        } else if word == "r" && next == Some('#') {
            // A raw identifier: r#type.
            self.bump();
            let start = self.at;
            while self.peek(0).is_some_and(is_ident_char) {
                self.bump();
            }
            let name: String = self.chars[start..self.at].iter().collect();
            self.push(Tok::Ident(name));
        } else {
            self.push(Tok::Ident(word));
        }
    }

    fn push(&mut self, tok: Tok) {
        self.out.push(Token {
            tok,
            line: self.line,
        });
    }

    fn run(mut self) -> Vec<Token> {
        while let Some(c) = self.peek(0) {
            match c {
                '/' if self.peek(1) == Some('/') => self.skip_line_comment(),
                '/' if self.peek(1) == Some('*') => self.skip_block_comment(),
                '"' => self.skip_string(),
                '\'' => self.skip_quote(),
                c if is_ident_start(c) => self.ident_or_literal(),
                c if c.is_ascii_digit() => {
                    while self.peek(0).is_some_and(is_ident_char) {
                        self.bump();
                    }
                }
                ':' if self.peek(1) == Some(':') => {
                    self.push(Tok::Sep);
                    self.bump();
                    self.bump();
                }
                '-' | '=' if self.peek(1) == Some('>') => {
                    self.push(Tok::Arrow);
                    self.bump();
                    self.bump();
                }
                c if c.is_whitespace() => self.bump(),
                c => {
                    self.push(Tok::Punct(c));
                    self.bump();
                }
            }
        }
        self.out
    }
}

pub(crate) fn lex(text: &str) -> Vec<Token> {
    Lexer {
        chars: text.chars().collect(),
        at: 0,
        line: 1,
        out: Vec::new(),
    }
    .run()
}

pub(crate) fn ident(t: Option<&Token>) -> Option<&str> {
    match t.map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

pub(crate) fn is_punct(t: Option<&Token>, c: char) -> bool {
    matches!(t.map(|t| &t.tok), Some(Tok::Punct(p)) if *p == c)
}

// ---------------------------------------------------------------------------------------------------------
// Use trees and paths.

/// Expands a use tree (the tokens between `use` and `;`) into its paths: `a::{b, c::{d, e as f}, *}` gives
/// `a::b`, `a::c::d`, `a::c::e`, `a::*`. A path names `self` for `a::{self}`, dropped here.
pub(crate) fn expand_use(tokens: &[Token]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut at = 0;
    expand_tree(tokens, &mut at, &mut Vec::new(), &mut out);
    out
}

pub(crate) fn expand_tree(
    tokens: &[Token],
    at: &mut usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    let depth = prefix.len();
    loop {
        match tokens.get(*at).map(|t| &t.tok) {
            Some(Tok::Ident(s)) if s == "as" => {
                *at += 2; // `as name`
            }
            Some(Tok::Ident(s)) => {
                prefix.push(s.clone());
                *at += 1;
            }
            Some(Tok::Sep) => *at += 1,
            Some(Tok::Punct('*')) => {
                prefix.push("*".into());
                *at += 1;
            }
            Some(Tok::Punct('{')) => {
                *at += 1;
                loop {
                    let mut inner = prefix.clone();
                    expand_tree(tokens, at, &mut inner, out);
                    match tokens.get(*at).map(|t| &t.tok) {
                        Some(Tok::Punct(',')) => *at += 1,
                        _ => break,
                    }
                    if is_punct(tokens.get(*at), '}') {
                        break;
                    }
                }
                *at += 1; // the closing brace
                prefix.truncate(depth);
                return;
            }
            _ => break,
        }
    }
    if prefix.len() > depth {
        let mut path = prefix.clone();
        if path.last().is_some_and(|s| s == "self") {
            path.pop();
        }
        out.push(path);
    }
    prefix.truncate(depth);
}

/// A reference from code to a path, with the line it is on.
#[derive(Debug, Clone)]
pub(crate) struct PathRef {
    /// The module the path is written in (inline `mod` blocks included), for `super::` and `self::`.
    pub(crate) scope: Vec<String>,
    pub(crate) path: Vec<String>,
    pub(crate) line: usize,
    /// Written in a `pub use`: a re-export.
    pub(crate) reexport: bool,
}

/// What one file says: the paths it names, its public item names and its functions.
#[derive(Debug, Default)]
pub(crate) struct FileScan {
    pub(crate) refs: Vec<PathRef>,
    pub(crate) pub_items: BTreeSet<String>,
    pub(crate) fns: Vec<FnSpan>,
}

#[derive(Debug, Clone)]
pub(crate) struct FnSpan {
    /// `Type::name` inside an impl block, `name` elsewhere.
    pub(crate) name: String,
    pub(crate) lines: usize,
}

pub(crate) const ITEM_KEYWORDS: &[&str] = &[
    "struct", "enum", "fn", "trait", "type", "const", "static", "mod", "union",
];

/// Scans one file of module `module`.
pub(crate) fn scan_file(module: &[String], text: &str) -> FileScan {
    let tokens = lex(text);
    let mut scan = FileScan::default();
    let mut depth = 0usize;
    // Inline modules and impl blocks: (name, the brace depth inside them).
    let mut mods: Vec<(String, usize)> = Vec::new();
    let mut impls: Vec<(String, usize)> = Vec::new();
    let mut pending_mod: Option<String> = None;
    let mut pending_impl: Option<String> = None;
    let mut i = 0;
    while i < tokens.len() {
        let scope = || {
            let mut s = module.to_vec();
            s.extend(mods.iter().map(|(m, _)| m.clone()));
            s
        };
        match &tokens[i].tok {
            Tok::Punct('{') => {
                depth += 1;
                if let Some(m) = pending_mod.take() {
                    mods.push((m, depth));
                }
                if let Some(t) = pending_impl.take() {
                    impls.push((t, depth));
                }
            }
            Tok::Punct('}') => {
                if mods.last().is_some_and(|(_, d)| *d == depth) {
                    mods.pop();
                }
                if impls.last().is_some_and(|(_, d)| *d == depth) {
                    impls.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Punct(';') => pending_mod = None,
            Tok::Ident(word) => match word.as_str() {
                "mod" => pending_mod = ident(tokens.get(i + 1)).map(str::to_string),
                "impl" if starts_item(&tokens, i) => {
                    pending_impl = Some(impl_type(&tokens[i + 1..]))
                }
                "use" if !is_punct(tokens.get(i + 1), '<') => {
                    let end = (i..tokens.len())
                        .find(|&j| is_punct(tokens.get(j), ';'))
                        .unwrap_or(tokens.len());
                    let reexport = is_public(&tokens, i);
                    for path in expand_use(&tokens[i + 1..end]) {
                        scan.refs.push(PathRef {
                            scope: scope(),
                            path,
                            line: tokens[i].line,
                            reexport,
                        });
                    }
                    i = end;
                    continue;
                }
                "crate" | "super" | "self"
                    if tokens.get(i + 1).map(|t| &t.tok) == Some(&Tok::Sep)
                        && !is_punct(i.checked_sub(1).and_then(|p| tokens.get(p)), '$')
                        && ident(i.checked_sub(1).and_then(|p| tokens.get(p))) != Some("in") =>
                {
                    let mut path = vec![word.clone()];
                    let mut j = i + 1;
                    while tokens.get(j).map(|t| &t.tok) == Some(&Tok::Sep) {
                        match ident(tokens.get(j + 1)) {
                            Some(s) => path.push(s.to_string()),
                            None => break,
                        }
                        j += 2;
                    }
                    scan.refs.push(PathRef {
                        scope: scope(),
                        path,
                        line: tokens[i].line,
                        reexport: false,
                    });
                    i = j;
                    continue;
                }
                "fn" => {
                    if let Some(name) = ident(tokens.get(i + 1))
                        && let Some(lines) = fn_lines(&tokens, i)
                    {
                        let name = match impls.last() {
                            Some((t, _)) => format!("{t}::{name}"),
                            None => name.to_string(),
                        };
                        scan.fns.push(FnSpan { name, lines });
                    }
                }
                kw if ITEM_KEYWORDS.contains(&kw) && depth == 0 && is_public(&tokens, i) => {
                    if let Some(name) = ident(tokens.get(i + 1)) {
                        scan.pub_items.insert(name.to_string());
                    }
                }
                _ => {}
            },
            _ => {}
        }
        i += 1;
    }
    scan
}

/// Whether the item keyword at `i` follows a `pub` or `pub(…)` (with `async`, `unsafe`, `const` between).
pub(crate) fn is_public(tokens: &[Token], i: usize) -> bool {
    let mut j = i;
    while j > 0 {
        j -= 1;
        match &tokens[j].tok {
            Tok::Ident(s) if matches!(s.as_str(), "async" | "unsafe" | "const" | "extern") => {}
            Tok::Ident(s) => return s == "pub",
            Tok::Punct(')') => {
                // pub(crate), pub(super), pub(in path)
                while j > 0 && !is_punct(tokens.get(j), '(') {
                    j -= 1;
                }
            }
            _ => return false,
        }
    }
    false
}

/// Whether `impl` at `i` starts an impl block (not `impl Trait` in a type).
pub(crate) fn starts_item(tokens: &[Token], i: usize) -> bool {
    match i.checked_sub(1).map(|p| &tokens[p].tok) {
        None => true,
        Some(Tok::Punct(c)) => matches!(c, '}' | ';' | '{' | ']'),
        Some(Tok::Ident(s)) => matches!(s.as_str(), "unsafe" | "default"),
        _ => false,
    }
}

/// The self type of an impl block whose header starts at `tokens[0]`: `impl<T> Tr for a::Ty<T> where … {` → `Ty`.
pub(crate) fn impl_type(tokens: &[Token]) -> String {
    let mut angle = 0i32;
    let mut header = Vec::new();
    for t in tokens {
        match &t.tok {
            Tok::Punct('{') if angle == 0 => break,
            Tok::Ident(s) if s == "where" && angle == 0 => break,
            Tok::Punct('<') => angle += 1,
            Tok::Punct('>') => angle -= 1,
            Tok::Ident(s) if angle == 0 => header.push(s.clone()),
            _ => {}
        }
    }
    let after_for = match header.iter().position(|s| s == "for") {
        Some(p) => &header[p + 1..],
        None => &header[..],
    };
    after_for
        .iter()
        .rfind(|s| !matches!(s.as_str(), "dyn" | "mut" | "const"))
        .cloned()
        .unwrap_or_else(|| "?".into())
}

/// The lines of the function whose `fn` is at `i`, from that line to its closing brace; `None` without a body.
pub(crate) fn fn_lines(tokens: &[Token], i: usize) -> Option<usize> {
    let mut nest = 0i32; // parentheses and brackets of the signature
    let mut j = i + 2;
    let open = loop {
        match &tokens.get(j)?.tok {
            Tok::Punct('(' | '[') => nest += 1,
            Tok::Punct(')' | ']') => nest -= 1,
            Tok::Punct(';') if nest == 0 => return None,
            Tok::Punct('{') if nest == 0 => break j,
            _ => {}
        }
        j += 1;
    };
    let mut depth = 0usize;
    for t in &tokens[open..] {
        match t.tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(t.line - tokens[i].line + 1);
                }
            }
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------------------
// The scanner itself.

pub(crate) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn use_trees_expand_to_their_paths() {
    let tokens = lex("crate::{a::B, c::{self, d::E as F}, g::*}");
    let got = expand_use(&tokens);
    let want = vec![
        strings(&["crate", "a", "B"]),
        strings(&["crate", "c"]),
        strings(&["crate", "c", "d", "E"]),
        strings(&["crate", "g", "*"]),
    ];
    assert_eq!(got, want);
}

#[test]
fn comments_strings_and_chars_name_no_path() {
    let text = r####"
// use crate::a::B;
/* crate::b::C /* nested */ crate::c::D */
const S: &str = "crate::d::E \" crate::e::F";
const R: &str = r#"crate::f::G "# ;
const C: char = '{';
fn f<'a>(x: &'a str) -> &'a str { let _ = b'}'; crate::real::H(x) }
"####;
    let scan = scan_file(&[], text);
    let paths: Vec<_> = scan.refs.iter().map(|r| r.path.join("::")).collect();
    assert_eq!(paths, vec!["crate::real::H"]);
    assert_eq!(scan.fns.len(), 1);
    assert_eq!(scan.fns[0].lines, 1);
}

#[test]
fn functions_are_measured_from_fn_to_closing_brace_with_their_impl_type() {
    let text = "impl<T> Show for Wrapper<T> where T: Clone {\n    fn show(&self) -> [u8; 2] {\n        let s = \"}\";\n        [0; 2]\n    }\n}\ntrait X { fn no_body(&self); }\nfn free() {}\n";
    let scan = scan_file(&[], text);
    let got: Vec<(String, usize)> = scan.fns.iter().map(|f| (f.name.clone(), f.lines)).collect();
    assert_eq!(
        got,
        vec![("Wrapper::show".to_string(), 4), ("free".to_string(), 1)]
    );
}
