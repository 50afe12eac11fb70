//! A strict parser of raw commit objects, for signature verification.
//!
//! gix and git are lenient readers; a verifier must not be. This parser accepts only the commit layout git
//! itself writes — `tree`, then the `parent`s, then `author`, then `committer`, then the optional headers
//! (`encoding`, one signature header, `mergetag`s, other extension headers), a blank line and the message —
//! and rejects everything an attacker could use to make two readers disagree about what was signed:
//! duplicate or misplaced `tree`/`parent`/`author`/`committer`/`encoding` headers, more than one signature,
//! a signature header for the other hash algorithm, look-alike `gpgsig*` headers (git silently drops those
//! from the signed payload), malformed identities and object ids.
//!
//! The signed payload is produced exactly as git produces it (`parse_buffer_signed_by_header` in git's
//! `commit.c`): the object bytes with the signature header and its continuation lines removed. For every
//! object this parser accepts, git computes the same payload.
//!
//! Pure: bytes in, [`ParsedCommit`] out. Reading the object is the caller's job.

use gix::ObjectId;
use gix::hash::Kind;

/// Why a commit object was refused. Messages name the header and what is wrong with it; the caller adds the
/// commit id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("the object does not start with a `tree` header")]
    MissingTree,
    #[error("`{header}` header: {reason}")]
    BadHeader { header: String, reason: String },
    #[error("duplicate `{0}` header")]
    Duplicate(&'static str),
    #[error("`parent` header out of place (parents must directly follow `tree`)")]
    ParentOutOfPlace,
    #[error(
        "`{0}` header out of place (expected tree, parents, author, committer, then other headers)"
    )]
    OutOfOrder(&'static str),
    #[error("missing `{0}` header")]
    Missing(&'static str),
    #[error("header line {line} is malformed: {reason}")]
    MalformedLine { line: usize, reason: &'static str },
    #[error("more than one signature ({0})")]
    MultipleSignatures(String),
    #[error(
        "signature header `{0}` is for another hash algorithm than this repository's; git treats the commit as unsigned"
    )]
    ForeignSignature(String),
    #[error(
        "unexpected header `{0}`: git drops headers starting with `gpgsig` from the signed payload, so they are refused"
    )]
    LookalikeSignatureHeader(String),
}

/// A person and a time, as in `author`/`committer` headers: `Name <email> 1700000000 +0100`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub email: String,
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// The time zone offset as written, e.g. `+0100`.
    pub offset: String,
}

/// A commit object that passed the strict checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCommit {
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    pub author: Identity,
    pub committer: Identity,
    /// The signature (the header value with the continuation prefix removed, `\n`-terminated lines, exactly
    /// what git hands to gpg or ssh-keygen), when the commit carries one.
    pub signature: Option<Vec<u8>>,
    /// The bytes the signature covers: the object without the signature header.
    pub payload: Vec<u8>,
}

/// The signature header git uses for `kind`, and the one it uses for the other hash algorithm.
pub(crate) fn signature_headers(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Sha1 => ("gpgsig", "gpgsig-sha256"),
        _ => ("gpgsig-sha256", "gpgsig"),
    }
}

/// One header: its name, its value (first line, without the name and the space) and its continuation lines
/// (without the leading space), and the byte range it spans in the object.
struct Header<'a> {
    name: &'a [u8],
    first: &'a [u8],
    continuation: Vec<&'a [u8]>,
    span: std::ops::Range<usize>,
}

/// Parse a raw commit object (the bytes after the `commit <len>\0` object header) of a repository whose
/// objects are named with `kind`.
pub fn parse(data: &[u8], kind: Kind) -> Result<ParsedCommit, CommitError> {
    let (headers, _body_start) = split_headers(data)?;
    let (sig_name, other_sig_name) = signature_headers(kind);

    let mut iter = headers.iter().peekable();

    // tree
    let tree = match iter.next() {
        Some(h) if h.name == b"tree" => {
            no_continuation(h, "tree")?;
            object_id(h.first, kind, "tree")?
        }
        _ => return Err(CommitError::MissingTree),
    };

    // parents, directly after tree
    let mut parents = Vec::new();
    while let Some(h) = iter.peek() {
        if h.name != b"parent" {
            break;
        }
        no_continuation(h, "parent")?;
        parents.push(object_id(h.first, kind, "parent")?);
        iter.next();
    }

    // author, then committer
    let author = match iter.next() {
        Some(h) if h.name == b"author" => {
            no_continuation(h, "author")?;
            identity(h.first, "author")?
        }
        Some(h) => return Err(misplaced(h, "author")),
        None => return Err(CommitError::Missing("author")),
    };
    let committer = match iter.next() {
        Some(h) if h.name == b"committer" => {
            no_continuation(h, "committer")?;
            identity(h.first, "committer")?
        }
        Some(h) => return Err(misplaced(h, "committer")),
        None => return Err(CommitError::Missing("committer")),
    };

    // everything else
    let mut signature: Option<(Vec<u8>, std::ops::Range<usize>)> = None;
    let mut seen_encoding = false;
    for h in iter {
        match h.name {
            b"tree" => return Err(CommitError::Duplicate("tree")),
            b"parent" => return Err(CommitError::ParentOutOfPlace),
            b"author" => return Err(CommitError::Duplicate("author")),
            b"committer" => return Err(CommitError::Duplicate("committer")),
            b"encoding" => {
                if seen_encoding {
                    return Err(CommitError::Duplicate("encoding"));
                }
                seen_encoding = true;
                no_continuation(h, "encoding")?;
            }
            name if name == sig_name.as_bytes() => {
                if signature.is_some() {
                    return Err(CommitError::MultipleSignatures(format!(
                        "`{sig_name}` header appears twice"
                    )));
                }
                let mut text = Vec::with_capacity(h.span.len());
                text.extend_from_slice(h.first);
                text.push(b'\n');
                for line in &h.continuation {
                    text.extend_from_slice(line);
                    text.push(b'\n');
                }
                signature = Some((text, h.span.clone()));
            }
            name if name == other_sig_name.as_bytes() => {
                // Refused whether or not our own signature header is present.
                if signature.is_some() || headers.iter().any(|x| x.name == sig_name.as_bytes()) {
                    return Err(CommitError::MultipleSignatures(format!(
                        "both `{sig_name}` and `{other_sig_name}` headers"
                    )));
                }
                return Err(CommitError::ForeignSignature(other_sig_name.to_string()));
            }
            name if name.starts_with(b"gpgsig") => {
                return Err(CommitError::LookalikeSignatureHeader(
                    String::from_utf8_lossy(name).into_owned(),
                ));
            }
            // `mergetag` (repeatable) and extension headers are part of the signed payload.
            _ => {}
        }
    }

    let (signature, payload) = match signature {
        Some((text, span)) => {
            let mut payload = Vec::with_capacity(data.len() - span.len());
            payload.extend_from_slice(&data[..span.start]);
            payload.extend_from_slice(&data[span.end..]);
            (Some(text), payload)
        }
        None => (None, data.to_vec()),
    };

    Ok(ParsedCommit {
        tree,
        parents,
        author,
        committer,
        signature,
        payload,
    })
}

/// Split the header block into headers; returns them and the offset where the message starts.
fn split_headers(data: &[u8]) -> Result<(Vec<Header<'_>>, usize), CommitError> {
    let mut headers: Vec<Header<'_>> = Vec::new();
    let mut pos = 0;
    let mut line_no = 0;
    while pos < data.len() {
        line_no += 1;
        let Some(nl) = data[pos..].iter().position(|&b| b == b'\n') else {
            return Err(CommitError::MalformedLine {
                line: line_no,
                reason: "header line is not terminated by a newline",
            });
        };
        let line = &data[pos..pos + nl];
        let next = pos + nl + 1;
        if line.is_empty() {
            // The blank line separating headers from the message.
            return Ok((headers, next));
        }
        if line.contains(&0) {
            return Err(CommitError::MalformedLine {
                line: line_no,
                reason: "NUL byte in header",
            });
        }
        if let Some(rest) = line.strip_prefix(b" ") {
            match headers.last_mut() {
                Some(h) => {
                    h.continuation.push(rest);
                    h.span.end = next;
                }
                None => {
                    return Err(CommitError::MalformedLine {
                        line: line_no,
                        reason: "continuation line without a header",
                    });
                }
            }
        } else {
            let Some(sp) = line.iter().position(|&b| b == b' ') else {
                return Err(CommitError::MalformedLine {
                    line: line_no,
                    reason: "header without a value",
                });
            };
            if sp == 0 {
                return Err(CommitError::MalformedLine {
                    line: line_no,
                    reason: "empty header name",
                });
            }
            headers.push(Header {
                name: &line[..sp],
                first: &line[sp + 1..],
                continuation: Vec::new(),
                span: pos..next,
            });
        }
        pos = next;
    }
    // A commit without a message: the headers end with the object.
    Ok((headers, data.len()))
}

/// The error for header `h` found where `expected` must be.
fn misplaced(h: &Header<'_>, expected: &'static str) -> CommitError {
    match h.name {
        b"tree" => CommitError::Duplicate("tree"),
        b"parent" => CommitError::ParentOutOfPlace,
        b"author" if expected == "committer" => CommitError::Duplicate("author"),
        b"committer" => CommitError::OutOfOrder("committer"),
        _ => CommitError::Missing(expected),
    }
}

fn no_continuation(h: &Header<'_>, name: &'static str) -> Result<(), CommitError> {
    if h.continuation.is_empty() {
        Ok(())
    } else {
        Err(CommitError::BadHeader {
            header: name.to_string(),
            reason: "unexpected continuation line".to_string(),
        })
    }
}

fn object_id(value: &[u8], kind: Kind, header: &'static str) -> Result<ObjectId, CommitError> {
    let bad = |reason: String| CommitError::BadHeader {
        header: header.to_string(),
        reason,
    };
    if value.len() != kind.len_in_hex()
        || !value
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return Err(bad(format!(
            "expected {} lowercase hex digits, found {:?}",
            kind.len_in_hex(),
            String::from_utf8_lossy(value)
        )));
    }
    ObjectId::from_hex(value).map_err(|e| bad(e.to_string()))
}

/// Parse `Name <email> 1700000000 +0100` strictly: exactly one `<` and one `>`, a decimal time and a
/// `+HHMM`/`-HHMM` offset.
fn identity(value: &[u8], header: &'static str) -> Result<Identity, CommitError> {
    let bad = |reason: &str| CommitError::BadHeader {
        header: header.to_string(),
        reason: reason.to_string(),
    };
    let text = std::str::from_utf8(value).map_err(|_| bad("identity is not valid UTF-8"))?;
    if text.matches('<').count() != 1 || text.matches('>').count() != 1 {
        return Err(bad("identity must contain exactly one `<` and one `>`"));
    }
    let lt = text.find('<').ok_or_else(|| bad("missing `<`"))?;
    let gt = text.find('>').ok_or_else(|| bad("missing `>`"))?;
    if gt < lt {
        return Err(bad("`>` before `<`"));
    }
    let name = text[..lt].trim_end().to_string();
    let email = text[lt + 1..gt].to_string();
    if email.chars().any(char::is_whitespace) {
        return Err(bad("email contains whitespace"));
    }
    let rest = text[gt + 1..]
        .strip_prefix(' ')
        .ok_or_else(|| bad("missing time after the email"))?;
    let mut parts = rest.split(' ');
    let (Some(time), Some(offset), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("expected `<seconds> <+HHMM>` after the email"));
    };
    let digits = time.strip_prefix('-').unwrap_or(time);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("time is not a decimal number of seconds"));
    }
    let time: i64 = time.parse().map_err(|_| bad("time out of range"))?;
    let ob = offset.as_bytes();
    if ob.len() != 5 || !(ob[0] == b'+' || ob[0] == b'-') || !ob[1..].iter().all(u8::is_ascii_digit)
    {
        return Err(bad("time zone offset must look like +HHMM or -HHMM"));
    }
    Ok(Identity {
        name,
        email,
        time,
        offset: offset.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    const P1: &str = "1111111111111111111111111111111111111111";
    const P2: &str = "2222222222222222222222222222222222222222";
    const WHO: &str = "A U Thor <author@example.com> 1700000000 +0100";

    fn commit(extra_after_committer: &str) -> String {
        format!(
            "tree {TREE}\nparent {P1}\nauthor {WHO}\ncommitter C O Mitter <c@example.com> 1700000100 -0230\n{extra_after_committer}\nmessage\n"
        )
    }

    #[test]
    fn plain_commit_parses() {
        let raw = commit("");
        let c = parse(raw.as_bytes(), Kind::Sha1).unwrap();
        assert_eq!(c.tree.to_string(), TREE);
        assert_eq!(c.parents.len(), 1);
        assert_eq!(c.author.email, "author@example.com");
        assert_eq!(c.committer.name, "C O Mitter");
        assert_eq!(c.committer.email, "c@example.com");
        assert_eq!(c.committer.time, 1_700_000_100);
        assert_eq!(c.committer.offset, "-0230");
        assert!(c.signature.is_none());
        assert_eq!(c.payload, raw.as_bytes());
    }

    #[test]
    fn signature_is_removed_from_payload_like_git() {
        let raw = commit(
            "gpgsig -----BEGIN SSH SIGNATURE-----\n abc\n \n -----END SSH SIGNATURE-----\nmergetag object x\n type commit\n",
        );
        let c = parse(raw.as_bytes(), Kind::Sha1).unwrap();
        assert_eq!(
            c.signature.as_deref().unwrap(),
            b"-----BEGIN SSH SIGNATURE-----\nabc\n\n-----END SSH SIGNATURE-----\n"
        );
        let expected = commit("mergetag object x\n type commit\n");
        assert_eq!(c.payload, expected.as_bytes());
    }

    #[test]
    fn merge_with_two_parents_parses() {
        let raw = format!(
            "tree {TREE}\nparent {P1}\nparent {P2}\nauthor {WHO}\ncommitter {WHO}\n\nmerge\n"
        );
        let c = parse(raw.as_bytes(), Kind::Sha1).unwrap();
        assert_eq!(c.parents.len(), 2);
    }

    #[test]
    fn refusals() {
        let cases: Vec<(&str, String, CommitError)> = vec![
            (
                "missing tree",
                format!("parent {P1}\nauthor {WHO}\ncommitter {WHO}\n\nm\n"),
                CommitError::MissingTree,
            ),
            (
                "duplicate tree",
                format!("tree {TREE}\ntree {TREE}\nauthor {WHO}\ncommitter {WHO}\n\nm\n"),
                CommitError::Duplicate("tree"),
            ),
            (
                "duplicate tree after committer",
                commit(&format!("tree {TREE}\n")),
                CommitError::Duplicate("tree"),
            ),
            (
                "parent after author",
                format!("tree {TREE}\nauthor {WHO}\nparent {P1}\ncommitter {WHO}\n\nm\n"),
                CommitError::ParentOutOfPlace,
            ),
            (
                "parent after committer",
                commit(&format!("parent {P2}\n")),
                CommitError::ParentOutOfPlace,
            ),
            (
                "missing committer",
                format!("tree {TREE}\nauthor {WHO}\nencoding x\n\nm\n"),
                CommitError::Missing("committer"),
            ),
            (
                "author twice before committer",
                format!("tree {TREE}\nauthor {WHO}\nauthor {WHO}\ncommitter {WHO}\n\nm\n"),
                CommitError::Duplicate("author"),
            ),
            (
                "duplicate author",
                commit(&format!("author {WHO}\n")),
                CommitError::Duplicate("author"),
            ),
            (
                "duplicate committer",
                commit(&format!("committer {WHO}\n")),
                CommitError::Duplicate("committer"),
            ),
            (
                "committer before author",
                format!("tree {TREE}\ncommitter {WHO}\nauthor {WHO}\n\nm\n"),
                CommitError::OutOfOrder("committer"),
            ),
            (
                "duplicate encoding",
                commit("encoding UTF-8\nencoding ISO-8859-1\n"),
                CommitError::Duplicate("encoding"),
            ),
            (
                "two gpgsig headers",
                commit("gpgsig a\ngpgsig b\n"),
                CommitError::MultipleSignatures("`gpgsig` header appears twice".into()),
            ),
            (
                "gpgsig and gpgsig-sha256",
                commit("gpgsig a\ngpgsig-sha256 b\n"),
                CommitError::MultipleSignatures("both `gpgsig` and `gpgsig-sha256` headers".into()),
            ),
            (
                "gpgsig-sha256 only in a sha1 repo",
                commit("gpgsig-sha256 b\n"),
                CommitError::ForeignSignature("gpgsig-sha256".into()),
            ),
            (
                "look-alike gpgsig header",
                commit("gpgsigx b\n"),
                CommitError::LookalikeSignatureHeader("gpgsigx".into()),
            ),
        ];
        for (name, raw, want) in cases {
            let got = parse(raw.as_bytes(), Kind::Sha1);
            assert_eq!(got, Err(want), "case {name}");
        }
    }

    #[test]
    fn malformed_fields_are_refused() {
        let bad = [
            format!("tree {}\nauthor {WHO}\ncommitter {WHO}\n\nm\n", &TREE[..39]),
            format!(
                "tree {}\nauthor {WHO}\ncommitter {WHO}\n\nm\n",
                TREE.to_uppercase()
            ),
            format!("tree {TREE}\nauthor Eve <e@x> <a@x> 1 +0000\ncommitter {WHO}\n\nm\n"),
            format!("tree {TREE}\nauthor {WHO}\ncommitter C <c@x> 1 +00000\n\nm\n"),
            format!("tree {TREE}\nauthor {WHO}\ncommitter C <c@x> x +0000\n\nm\n"),
            format!("tree {TREE}\nauthor {WHO}\ncommitter C <c@x> 1 +0000 extra\n\nm\n"),
            format!("tree {TREE}\nauthor {WHO}\ncommitter {WHO}"),
            format!("tree {TREE}\n continuation\nauthor {WHO}\ncommitter {WHO}\n\nm\n"),
            format!("tree {TREE}\nauthor {WHO}\ncommitter {WHO}\nnovalue\n\nm\n"),
            format!(" x\ntree {TREE}\nauthor {WHO}\ncommitter {WHO}\n\nm\n"),
            format!("tree {TREE}\nauthor {WHO}\ncommitter {WHO}\nx\0y z\n\nm\n"),
        ];
        for raw in bad {
            assert!(
                parse(raw.as_bytes(), Kind::Sha1).is_err(),
                "accepted {raw:?}"
            );
        }
    }

    #[test]
    fn message_may_contain_header_like_lines() {
        let raw = commit("").replace("message\n", "gpgsig not a header\ntree x\n");
        let c = parse(raw.as_bytes(), Kind::Sha1).unwrap();
        assert!(c.signature.is_none());
    }
}
