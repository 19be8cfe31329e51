//! Host ids and certificate names: the one rule for what a host id, a reader name or a
//! certificate file stem may contain, shared by the certificate code and the CLI (`--host-id`).
//!
//! The rule (pure, no I/O):
//! - a **name** (what a certificate's CN holds for a collector or reader, and a file stem) is 1 to
//!   [`MAX_NAME_LEN`] bytes of ASCII letters, digits and `.` `_` `-` `:` `@`, starting with a
//!   letter or a digit;
//! - a **host id** (what a collector reports in `Hello.host_id`) is a name, optionally followed by
//!   container parts: `HOST/PART[/PART...]`, every part following the name rule, at most
//!   [`MAX_HOST_ID_LEN`] bytes in all. `/` appears only between parts.
//!
//! Why this narrow set: a host id is an identity that authorisation compares byte for byte, that
//! appears in logs, tables and file names (`DIR/NAME.pem`). ASCII only means no look-alike
//! letters (Cyrillic `а` for Latin `a`), no bidirectional or zero-width characters, no control
//! characters or whitespace; a leading letter or digit means no `.`/`..` path parts and no name
//! that a shell takes for an option. It still covers every hostname (RFC 1123), Docker container
//! name, Kubernetes object name and netns name seen in practice. The 64-byte bound is X.509's
//! `ub-common-name` (RFC 5280 appendix A), which OpenSSL enforces, so that any PKI can put the
//! name in a certificate's CN; 255 bytes overall is a DNS name's bound (RFC 1035 §2.3.4).

use std::fmt;

/// Longest name in bytes (X.509 `ub-common-name`, RFC 5280 appendix A: a CN holds at most 64).
pub const MAX_NAME_LEN: usize = 64;
/// Longest host id in bytes, container parts included (RFC 1035 §2.3.4 bound of a DNS name).
pub const MAX_HOST_ID_LEN: usize = 255;
/// The separator between a host and its container parts in a host id.
pub const CONTAINER_SEPARATOR: char = '/';

/// What was being validated, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A collector's host id (`--host-id`, `Hello.host_id`), container parts allowed.
    HostId,
    /// A collector certificate's host (CN), one part.
    CertHost,
    /// A reader certificate's name (CN), one part.
    ReaderName,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::HostId => "host id",
            NameKind::CertHost => "collector host",
            NameKind::ReaderName => "reader name",
        })
    }
}

/// What is wrong with a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    /// Zero bytes.
    Empty,
    /// Longer than `max` bytes.
    TooLong { len: usize, max: usize },
    /// A character outside the allowed set, at byte offset `at`.
    BadChar { found: char, at: usize },
    /// A part (between `/`) that does not start with an ASCII letter or digit.
    BadStart { part: String },
    /// A leading, trailing or doubled `/`.
    EmptyPart,
    /// A `/` where only one part is allowed (a certificate names a host, not a container).
    Slash,
}

/// A name or host id that breaks the rule of this module. `Display` says what was checked, what
/// is wrong and what to use instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?} is not valid: {problem}")]
pub struct NameError {
    /// What was being validated.
    pub kind: NameKind,
    /// The offending value, as given (`Debug`-escaped in the message).
    pub value: String,
    /// What is wrong with it.
    pub problem: NameProblem,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const USE: &str = "use ASCII letters, digits and . _ - : @";
        match self {
            NameProblem::Empty => write!(f, "it is empty; {USE}"),
            NameProblem::TooLong { len, max } => {
                write!(f, "it is {len} bytes long, the limit is {max}; use a shorter name")
            }
            NameProblem::BadChar { found, at } => {
                write!(
                    f,
                    "it has {found:?} at byte {at}; {USE}, with '/' only between a host and its container part"
                )
            }
            NameProblem::BadStart { part } => {
                write!(f, "part {part:?} must start with an ASCII letter or digit")
            }
            NameProblem::EmptyPart => {
                write!(
                    f,
                    "it has an empty part (a leading, trailing or doubled '/'); write HOST or HOST/CONTAINER"
                )
            }
            NameProblem::Slash => write!(
                f,
                "a certificate names one host, without '/': collectors with container parts use the host's certificate"
            ),
        }
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@')
}

/// Check one part; `offset` is its byte offset in the whole value (for the message).
fn check_part(part: &str, offset: usize) -> Result<(), NameProblem> {
    let Some(first) = part.chars().next() else {
        return Err(NameProblem::EmptyPart);
    };
    if let Some((i, c)) = part.char_indices().find(|&(_, c)| !allowed(c)) {
        return Err(NameProblem::BadChar {
            found: c,
            at: offset + i,
        });
    }
    if !first.is_ascii_alphanumeric() {
        return Err(NameProblem::BadStart { part: part.to_string() });
    }
    Ok(())
}

fn name_problem(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if let Some(at) = name.find(CONTAINER_SEPARATOR) {
        // Report a bad character first only if it comes before the slash; the slash is the news.
        check_part(&name[..at], 0)?;
        return Err(NameProblem::Slash);
    }
    check_part(name, 0)?;
    if name.len() > MAX_NAME_LEN {
        return Err(NameProblem::TooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    Ok(())
}

fn host_id_problem(id: &str) -> Result<(), NameProblem> {
    if id.is_empty() {
        return Err(NameProblem::Empty);
    }
    let mut offset = 0;
    for (i, part) in id.split(CONTAINER_SEPARATOR).enumerate() {
        check_part(part, offset)?;
        if i == 0 && part.len() > MAX_NAME_LEN {
            return Err(NameProblem::TooLong {
                len: part.len(),
                max: MAX_NAME_LEN,
            });
        }
        offset += part.len() + 1;
    }
    if id.len() > MAX_HOST_ID_LEN {
        return Err(NameProblem::TooLong {
            len: id.len(),
            max: MAX_HOST_ID_LEN,
        });
    }
    Ok(())
}

/// Validate a collector's host id: `HOST` or `HOST/PART[/PART...]` (container parts), each part
/// 1+ bytes of `[A-Za-z0-9._:@-]` starting with a letter or digit, `HOST` at most
/// [`MAX_NAME_LEN`] bytes (it must fit a certificate's CN), the whole at most
/// [`MAX_HOST_ID_LEN`] bytes.
///
/// Errors: [`NameError`] with kind [`NameKind::HostId`].
pub fn validate_host_id(id: &str) -> Result<(), NameError> {
    host_id_problem(id).map_err(|problem| NameError {
        kind: NameKind::HostId,
        value: id.to_string(),
        problem,
    })
}

/// Validate a name that a certificate carries in its CN (a collector's host or a reader's name)
/// and that names its files: one part, 1 to [`MAX_NAME_LEN`] bytes of `[A-Za-z0-9._:@-]`,
/// starting with a letter or digit, no `/`. `kind` only labels the error message.
///
/// Errors: [`NameError`] with the given kind.
pub fn validate_name(name: &str, kind: NameKind) -> Result<(), NameError> {
    name_problem(name).map_err(|problem| NameError {
        kind,
        value: name.to_string(),
        problem,
    })
}

/// The host part of a host id (`"web-1/redis"` → `"web-1"`, `"web-1"` → `"web-1"`). Does not
/// validate.
pub fn host_part(host_id: &str) -> &str {
    host_id.split(CONTAINER_SEPARATOR).next().unwrap_or(host_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(id: &str) -> NameProblem {
        validate_host_id(id).unwrap_err().problem
    }

    #[test]
    fn ordinary_host_ids_are_accepted() {
        for id in [
            "web-1",
            "db01.example.com",
            "ip-10-0-0-1.eu-west-1.compute.internal",
            "node_7",
            "web-1/redis",
            "web-1/cni-8f3a2c1e-0d4b-4c7a",
            "k8s-node-3/kube-system:coredns-5d78c9869d-abcde",
            "h/a/b",
            "1",
            &"a".repeat(64),
        ] {
            assert_eq!(validate_host_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn empty_and_slash_misuse_are_refused() {
        assert_eq!(problem(""), NameProblem::Empty);
        assert_eq!(problem("/web"), NameProblem::EmptyPart);
        assert_eq!(problem("web/"), NameProblem::EmptyPart);
        assert_eq!(problem("web//x"), NameProblem::EmptyPart);
        assert_eq!(problem("/"), NameProblem::EmptyPart);
    }

    #[test]
    fn control_characters_whitespace_and_non_ascii_are_refused() {
        assert_eq!(problem("web\u{7}1"), NameProblem::BadChar { found: '\u{7}', at: 3 });
        assert_eq!(problem("web 1"), NameProblem::BadChar { found: ' ', at: 3 });
        assert_eq!(problem("web\t1"), NameProblem::BadChar { found: '\t', at: 3 });
        assert_eq!(problem("web-1\n"), NameProblem::BadChar { found: '\n', at: 5 });
        assert_eq!(
            problem("w\u{0435}b"),
            NameProblem::BadChar {
                found: '\u{0435}',
                at: 1
            }
        ); // Cyrillic e
        assert_eq!(
            problem("web\u{202e}1"),
            NameProblem::BadChar {
                found: '\u{202e}',
                at: 3
            }
        ); // bidi override
        assert_eq!(problem("web-1/re dis"), NameProblem::BadChar { found: ' ', at: 8 });
        assert_eq!(problem("a\0"), NameProblem::BadChar { found: '\0', at: 1 });
    }

    #[test]
    fn parts_must_start_with_a_letter_or_digit() {
        assert_eq!(problem(".."), NameProblem::BadStart { part: "..".into() });
        assert_eq!(problem("web/.."), NameProblem::BadStart { part: "..".into() });
        assert_eq!(problem("-rf"), NameProblem::BadStart { part: "-rf".into() });
        assert_eq!(problem("web/_x"), NameProblem::BadStart { part: "_x".into() });
    }

    #[test]
    fn lengths_are_bounded() {
        assert_eq!(problem(&"a".repeat(65)), NameProblem::TooLong { len: 65, max: 64 });
        // container parts may be long, the whole may not exceed 255
        let long_ok = format!("web/{}", "b".repeat(251));
        assert_eq!(long_ok.len(), 255);
        assert_eq!(validate_host_id(&long_ok), Ok(()));
        let too_long = format!("web/{}", "b".repeat(252));
        assert_eq!(problem(&too_long), NameProblem::TooLong { len: 256, max: 255 });
    }

    #[test]
    fn names_are_one_part() {
        assert_eq!(validate_name("web-1", NameKind::CertHost), Ok(()));
        assert_eq!(validate_name("alice@example.com", NameKind::ReaderName), Ok(()));
        let e = validate_name("web-1/redis", NameKind::CertHost).unwrap_err();
        assert_eq!(e.problem, NameProblem::Slash);
        assert_eq!(e.kind, NameKind::CertHost);
        // a bad character before the slash is reported as such
        assert_eq!(
            validate_name("we b/x", NameKind::CertHost).unwrap_err().problem,
            NameProblem::BadChar { found: ' ', at: 2 }
        );
        assert_eq!(
            validate_name("", NameKind::ReaderName).unwrap_err().problem,
            NameProblem::Empty
        );
        assert_eq!(
            validate_name(&"r".repeat(65), NameKind::ReaderName)
                .unwrap_err()
                .problem,
            NameProblem::TooLong { len: 65, max: 64 }
        );
    }

    #[test]
    fn the_message_names_the_field_escapes_the_value_and_says_what_to_use() {
        let msg = validate_host_id("web\u{1b}[31m").unwrap_err().to_string();
        assert_eq!(
            msg,
            "host id \"web\\u{1b}[31m\" is not valid: it has '\\u{1b}' at byte 3; use ASCII letters, digits \
             and . _ - : @, with '/' only between a host and its container part"
        );
        assert!(!msg.contains('\u{1b}'));
    }

    #[test]
    fn host_part_is_the_first_part() {
        assert_eq!(host_part("web-1/redis/x"), "web-1");
        assert_eq!(host_part("web-1"), "web-1");
    }
}
