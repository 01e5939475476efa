//! Reader for libvmsrs environment files: a strict subset of systemd `EnvironmentFile=` syntax.
//!
//! Role: turn `/etc/vmsrs/NAME.env` into ordered `(KEY, VALUE)` pairs, so that the same file can
//! also be named by `EnvironmentFile=` in a unit. It knows nothing about which keys exist; that
//! is [`crate::config`]'s business.
//!
//! Invariant: **every file this module accepts is read by systemd (v247 and later, whose
//! `parse_env_file_internal` in `src/basic/env-file.c` is the reference) as exactly the same
//! pairs**. Whatever systemd would read differently, or what a reader could easily misread, is
//! rejected with the line number and the reason instead of being guessed at. (systemd before
//! v247 read backslashes inside quotes differently: v241..v246 kept the backslash of `\\`, `\$`
//! and `` \` `` in double quotes, and earlier versions also unescaped inside single quotes. A file
//! that must serve those too should use single quotes and no backslashes.)
//!
//! Accepted, line by line (lines are separated by `\n` and numbered from 1):
//! - blank lines (spaces and tabs only);
//! - comments: the first non-blank character is `#` or `;`;
//! - `KEY=VALUE`, optionally indented, where `KEY` matches `[A-Za-z_][A-Za-z0-9_]*` and is
//!   followed directly by `=`, and `VALUE` is one of
//!   - unquoted: leading and trailing spaces/tabs are trimmed (as systemd does), inner ones kept;
//!   - `'single quoted'`: taken literally, up to the next `'`;
//!   - `"double quoted"`: `\"`, `\\`, `` \` `` and `\$` stand for the second character;
//!
//!   and a quoted value may be surrounded by spaces/tabs, nothing else. `$` is never expanded.
//!
//! Rejected (systemd would read these differently, or a person could read them two ways):
//! NUL bytes, invalid UTF-8, carriage returns (systemd treats a lone `\r` as a line break),
//! control characters other than tab in an assignment, a byte-order mark, line continuation (a
//! trailing backslash, in a value or in a comment: systemd before v254 continued such comments),
//! an `export ` prefix, a missing `=`, an empty or invalid key, blanks before `=`, an unterminated
//! quote (systemd lets quotes span lines), text after a closing quote (systemd would glue it on),
//! quotes or backslashes inside an unquoted value (systemd keeps the quotes and drops the
//! backslash), other backslash escapes inside double quotes (systemd keeps the backslash, but
//! older versions did not), and ` #` inside an unquoted value (systemd has no inline comments).

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The largest environment file [`read`] accepts, in bytes. A configuration file is a few
/// kilobytes; the cap keeps a mistaken path such as `/dev/zero` from exhausting memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Characters a backslash escapes inside double quotes (systemd's `SHELL_NEED_ESCAPE`).
const DOUBLE_QUOTE_ESCAPABLE: [char; 4] = ['"', '\\', '`', '$'];

/// One assignment read from an environment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number of the assignment.
    pub line: usize,
    pub key: String,
    pub value: String,
}

impl Entry {
    /// The `(key, value)` pair, dropping the line number.
    pub fn into_pair(self) -> (String, String) {
        (self.key, self.value)
    }
}

/// Why a line was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    NulByte,
    InvalidUtf8,
    CarriageReturn,
    ByteOrderMark,
    ControlCharacter(char),
    CommentContinuation,
    ExportPrefix,
    MissingEquals,
    EmptyKey,
    BlankBeforeEquals,
    InvalidKey(String),
    LineContinuation,
    UnterminatedQuote(char),
    TextAfterClosingQuote(char),
    QuoteInUnquotedValue(char),
    BackslashInUnquotedValue,
    UnsupportedEscape(char),
    InlineComment,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NulByte => f.write_str("NUL byte"),
            Self::InvalidUtf8 => f.write_str("invalid UTF-8"),
            Self::CarriageReturn => {
                f.write_str("carriage return (systemd reads it as a line break; use LF line endings)")
            }
            Self::ByteOrderMark => f.write_str("byte-order mark at the start of the file"),
            Self::ControlCharacter(c) => write!(f, "control character {:?}", c),
            Self::CommentContinuation => f.write_str(
                "comment ends with a backslash (older systemd continues the comment onto the next line)",
            ),
            Self::ExportPrefix => f.write_str("`export` prefix is not supported (write KEY=VALUE)"),
            Self::MissingEquals => f.write_str("missing '=' (expected KEY=VALUE)"),
            Self::EmptyKey => f.write_str("empty key before '='"),
            Self::BlankBeforeEquals => f.write_str("blank between key and '='"),
            Self::InvalidKey(key) => {
                write!(f, "invalid key {:?} (expected [A-Za-z_][A-Za-z0-9_]*)", key)
            }
            Self::LineContinuation => f.write_str("line continuation (trailing backslash) is not supported"),
            Self::UnterminatedQuote(q) => write!(f, "unterminated {q}-quoted value (quotes must close on the same line)"),
            Self::TextAfterClosingQuote(c) => write!(f, "text {:?} after the closing quote", c),
            Self::QuoteInUnquotedValue(q) => {
                write!(f, "{q} inside an unquoted value (quote the whole value instead)")
            }
            Self::BackslashInUnquotedValue => f.write_str(
                "backslash in an unquoted value (systemd drops it; put the value in single quotes)",
            ),
            Self::UnsupportedEscape(c) => write!(
                f,
                "unsupported escape \\{c} in double quotes (only \\\" \\\\ \\` \\$; use single quotes for literal text)"
            ),
            Self::InlineComment => f.write_str(
                "'#' after a blank in an unquoted value (systemd keeps it: there are no inline comments)",
            ),
        }
    }
}

/// What went wrong while reading or parsing an environment file.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be opened or read.
    Io(io::Error),
    /// The file is larger than [`MAX_FILE_BYTES`].
    TooLarge { limit: u64 },
    /// A line is outside the accepted syntax.
    Syntax { line: usize, reason: Reason },
}

/// An environment-file error; displays as `path:line: reason` (or `path: reason`).
#[derive(Debug)]
pub struct EnvFileError {
    path: Option<PathBuf>,
    kind: ErrorKind,
}

impl EnvFileError {
    fn syntax(line: usize, reason: Reason) -> Self {
        Self { path: None, kind: ErrorKind::Syntax { line, reason } }
    }

    fn at(self, path: &Path) -> Self {
        Self { path: Some(path.to_path_buf()), ..self }
    }

    /// The file the error is about; `None` for text parsed from memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// True when the file could not be read at all (the caller reports `VMSRS_EIO`).
    pub fn is_io(&self) -> bool {
        matches!(self.kind, ErrorKind::Io(_))
    }

    /// The 1-based line of a syntax error.
    pub fn line(&self) -> Option<usize> {
        match self.kind {
            ErrorKind::Syntax { line, .. } => Some(line),
            _ => None,
        }
    }

    /// The reason of a syntax error.
    pub fn reason(&self) -> Option<&Reason> {
        match &self.kind {
            ErrorKind::Syntax { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

impl fmt::Display for EnvFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.as_deref().unwrap_or(Path::new("<input>")).display();
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "{path}: cannot read the environment file: {e}"),
            ErrorKind::TooLarge { limit } => write!(f, "{path}: larger than {limit} bytes"),
            ErrorKind::Syntax { line, reason } => write!(f, "{path}:{line}: {reason}"),
        }
    }
}

impl std::error::Error for EnvFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Parse environment-file text into ordered pairs (a key given twice appears twice; the later
/// one is the one systemd keeps).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    parse_bytes(text.as_bytes())
}

/// [`parse`] for raw bytes, which may hold invalid UTF-8 (then rejected with its line).
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<(String, String)>, EnvFileError> {
    Ok(parse_entries(bytes)?.into_iter().map(Entry::into_pair).collect())
}

/// [`parse_bytes`], keeping each assignment's line number.
pub fn parse_entries(bytes: &[u8]) -> Result<Vec<Entry>, EnvFileError> {
    let mut entries = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let parsed = decode_line(raw).and_then(|text| parse_line(text, line == 1));
        match parsed.map_err(|reason| EnvFileError::syntax(line, reason))? {
            Some((key, value)) => entries.push(Entry { line, key, value }),
            None => continue,
        }
    }
    Ok(entries)
}

/// Read and parse the file at `path`.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, EnvFileError> {
    Ok(read_entries(path)?.into_iter().map(Entry::into_pair).collect())
}

/// [`read`], keeping each assignment's line number.
pub fn read_entries(path: &Path) -> Result<Vec<Entry>, EnvFileError> {
    let bytes = read_capped(path).map_err(|e| e.at(path))?;
    parse_entries(&bytes).map_err(|e| e.at(path))
}

fn read_capped(path: &Path) -> Result<Vec<u8>, EnvFileError> {
    let io_error = |e| EnvFileError { path: None, kind: ErrorKind::Io(e) };
    let mut bytes = Vec::new();
    let file = File::open(path).map_err(io_error)?;
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(EnvFileError { path: None, kind: ErrorKind::TooLarge { limit: MAX_FILE_BYTES } });
    }
    Ok(bytes)
}

/// True when `key` is a name this reader accepts: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Quote `value` so that [`parse`] (and systemd) read it back unchanged: single quotes when it
/// holds no `'`, else double quotes with `"`, `\`, `` ` `` and `$` escaped. `None` when no
/// accepted spelling exists (the value holds a control character other than tab).
pub fn quote(value: &str) -> Option<String> {
    if value.chars().any(is_forbidden_control) {
        return None;
    }
    if !value.contains('\'') {
        return Some(format!("'{value}'"));
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if DOUBLE_QUOTE_ESCAPABLE.contains(&c) {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Some(quoted)
}

/// Write `pairs` as an environment file, one quoted assignment a line. `None` when a key is
/// invalid or a value cannot be quoted (see [`quote`]).
pub fn serialize(pairs: &[(String, String)]) -> Option<String> {
    let mut text = String::new();
    for (key, value) in pairs {
        if !is_valid_key(key) {
            return None;
        }
        text.push_str(key);
        text.push('=');
        text.push_str(&quote(value)?);
        text.push('\n');
    }
    Some(text)
}

fn decode_line(raw: &[u8]) -> Result<&str, Reason> {
    if raw.contains(&0) {
        return Err(Reason::NulByte);
    }
    std::str::from_utf8(raw).map_err(|_| Reason::InvalidUtf8)
}

/// Parse one line (without its `\n`): `None` for blank lines and comments.
fn parse_line(text: &str, first_line: bool) -> Result<Option<(String, String)>, Reason> {
    if text.contains('\r') {
        return Err(Reason::CarriageReturn);
    }
    if first_line && text.starts_with('\u{feff}') {
        return Err(Reason::ByteOrderMark);
    }
    let body = trim_start_blank(text);
    if body.is_empty() {
        return Ok(None);
    }
    if body.starts_with(['#', ';']) {
        return check_comment(body).map(|()| None);
    }
    if let Some(c) = body.chars().find(|&c| is_forbidden_control(c)) {
        return Err(Reason::ControlCharacter(c));
    }
    let (key, raw_value) = split_assignment(body)?;
    Ok(Some((key.to_owned(), parse_value(raw_value)?)))
}

fn check_comment(comment: &str) -> Result<(), Reason> {
    if comment.ends_with('\\') {
        return Err(Reason::CommentContinuation);
    }
    Ok(())
}

/// Split `KEY=rest` and validate the key.
fn split_assignment(body: &str) -> Result<(&str, &str), Reason> {
    if body.strip_prefix("export").is_some_and(|rest| rest.starts_with([' ', '\t'])) {
        return Err(Reason::ExportPrefix);
    }
    let (key, rest) = body.split_once('=').ok_or(Reason::MissingEquals)?;
    if key.is_empty() {
        return Err(Reason::EmptyKey);
    }
    if key.ends_with([' ', '\t']) && is_valid_key(trim_end_blank(key)) {
        return Err(Reason::BlankBeforeEquals);
    }
    if !is_valid_key(key) {
        return Err(Reason::InvalidKey(key.to_owned()));
    }
    Ok((key, rest))
}

/// Parse everything after `=`.
fn parse_value(raw: &str) -> Result<String, Reason> {
    let value = trim_start_blank(raw);
    if let Some(rest) = value.strip_prefix('\'') {
        single_quoted(rest)
    } else if let Some(rest) = value.strip_prefix('"') {
        double_quoted(rest)
    } else {
        unquoted(raw, value)
    }
}

fn single_quoted(rest: &str) -> Result<String, Reason> {
    let end = rest.find('\'').ok_or(Reason::UnterminatedQuote('\''))?;
    only_blanks_after_quote(&rest[end + 1..])?;
    Ok(rest[..end].to_owned())
}

fn double_quoted(rest: &str) -> Result<String, Reason> {
    let mut value = String::new();
    let mut chars = rest.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                only_blanks_after_quote(&rest[at + 1..])?;
                return Ok(value);
            }
            '\\' => match chars.next() {
                None => return Err(Reason::LineContinuation),
                Some((_, e)) if DOUBLE_QUOTE_ESCAPABLE.contains(&e) => value.push(e),
                Some((_, e)) => return Err(Reason::UnsupportedEscape(e)),
            },
            _ => value.push(c),
        }
    }
    Err(Reason::UnterminatedQuote('"'))
}

fn only_blanks_after_quote(tail: &str) -> Result<(), Reason> {
    match trim_start_blank(tail).chars().next() {
        Some(c) => Err(Reason::TextAfterClosingQuote(c)),
        None => Ok(()),
    }
}

/// `raw` is the text after `=`, `value` the same with leading blanks trimmed.
fn unquoted(raw: &str, value: &str) -> Result<String, Reason> {
    if value.ends_with('\\') {
        return Err(Reason::LineContinuation);
    }
    if value.contains('\\') {
        return Err(Reason::BackslashInUnquotedValue);
    }
    if let Some(q) = value.chars().find(|&c| c == '\'' || c == '"') {
        return Err(Reason::QuoteInUnquotedValue(q));
    }
    if raw.as_bytes().windows(2).any(|w| is_blank_byte(w[0]) && w[1] == b'#') {
        return Err(Reason::InlineComment);
    }
    Ok(trim_end_blank(value).to_owned())
}

/// Control characters other than tab: systemd keeps them, but no setting needs them and they
/// hide in terminals.
fn is_forbidden_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// systemd's blanks inside a line (its `WHITESPACE` minus the line breaks).
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_blank_byte(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_start_blank(s: &str) -> &str {
    s.trim_start_matches(is_blank)
}

fn trim_end_blank(s: &str) -> &str {
    s.trim_end_matches(is_blank)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|e| panic!("{text:?} rejected: {e}"))
    }

    fn one(text: &str) -> (String, String) {
        let mut all = pairs(text);
        assert_eq!(all.len(), 1, "{text:?}");
        all.remove(0)
    }

    fn value(text: &str) -> String {
        one(text).1
    }

    fn rejection(text: &str) -> (usize, Reason) {
        let err = parse(text).expect_err(text);
        (err.line().expect("syntax error has a line"), err.reason().cloned().expect("syntax reason"))
    }

    fn reason(text: &str) -> Reason {
        rejection(text).1
    }

    #[test]
    fn simple_assignments_are_read_in_order() {
        let got = pairs("A=1\nB_2=two\n_c=3");
        let want = [("A", "1"), ("B_2", "two"), ("_c", "3")];
        assert_eq!(got, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }

    #[test]
    fn blank_lines_and_comments_are_skipped() {
        assert_eq!(pairs("\n   \n\t\n# c\n  ; c\n\t# c\nA=1\n"), [("A".into(), "1".into())]);
    }

    #[test]
    fn empty_text_has_no_pairs() {
        assert!(pairs("").is_empty());
        assert!(pairs("\n\n").is_empty());
    }

    #[test]
    fn indented_assignment_is_accepted() {
        assert_eq!(one("  \tA=1"), ("A".into(), "1".into()));
    }

    #[test]
    fn unquoted_value_is_trimmed_like_systemd() {
        assert_eq!(value("A=  x y \t "), "x y");
        assert_eq!(value("A=\tx\t\ty"), "x\t\ty");
    }

    #[test]
    fn unquoted_value_keeps_non_ascii_whitespace() {
        assert_eq!(value("A=x\u{a0}"), "x\u{a0}");
    }

    #[test]
    fn empty_value_is_empty_string() {
        assert_eq!(value("A="), "");
        assert_eq!(value("A=   "), "");
        assert_eq!(value("A=''"), "");
        assert_eq!(value("A=\"\""), "");
    }

    #[test]
    fn dollar_is_literal_everywhere() {
        assert_eq!(value("A=$HOME"), "$HOME");
        assert_eq!(value("A='${X}'"), "${X}");
        assert_eq!(value("A=\"$X\""), "$X");
    }

    #[test]
    fn single_quoted_value_is_literal() {
        assert_eq!(value("A='a \"b\" \\n # ; $x'"), "a \"b\" \\n # ; $x");
    }

    #[test]
    fn quoted_value_may_be_surrounded_by_blanks() {
        assert_eq!(value("A=  ' x '  \t"), " x ");
        assert_eq!(value("A=\t\" x \" "), " x ");
    }

    #[test]
    fn double_quoted_value_honours_systemd_escapes() {
        assert_eq!(value(r#"A="q\" b\\ t\` d\$""#), "q\" b\\ t` d$");
        assert_eq!(value(r#"A="it's""#), "it's");
    }

    #[test]
    fn hash_and_semicolon_inside_values_are_literal() {
        assert_eq!(value("A=x#y;z"), "x#y;z");
        assert_eq!(value("A=#x"), "#x");
        assert_eq!(value("A=' #x'"), " #x");
    }

    #[test]
    fn equals_sign_in_value_is_literal() {
        assert_eq!(value("A=b=c"), "b=c");
    }

    #[test]
    fn duplicate_keys_are_all_returned_in_order() {
        assert_eq!(pairs("A=1\nA=2"), [("A".into(), "1".into()), ("A".into(), "2".into())]);
    }

    #[test]
    fn entries_carry_their_line_numbers() {
        let entries = parse_entries(b"# x\n\nA=1\nB=2\n").unwrap();
        assert_eq!(entries.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 4]);
    }

    #[test]
    fn line_continuation_is_rejected() {
        assert_eq!(rejection("A=1\nB=x \\\nC=2"), (2, Reason::LineContinuation));
        assert_eq!(reason("A=\\"), Reason::LineContinuation);
        assert_eq!(reason("A=\"abc\\"), Reason::LineContinuation);
    }

    #[test]
    fn comment_ending_in_backslash_is_rejected() {
        assert_eq!(rejection("# see \\\nA=1"), (1, Reason::CommentContinuation));
        assert_eq!(reason("; x\\"), Reason::CommentContinuation);
    }

    #[test]
    fn export_prefix_is_rejected() {
        assert_eq!(reason("export A=1"), Reason::ExportPrefix);
        assert_eq!(reason("export\tA=1"), Reason::ExportPrefix);
        assert_eq!(value("export=1"), "1");
        assert_eq!(value("exported=1"), "1");
    }

    #[test]
    fn unterminated_quotes_are_rejected() {
        assert_eq!(reason("A='abc"), Reason::UnterminatedQuote('\''));
        assert_eq!(reason("A=\"abc"), Reason::UnterminatedQuote('"'));
        assert_eq!(reason("A=\"abc\\\""), Reason::UnterminatedQuote('"'));
        assert_eq!(rejection("A='x\ny'"), (1, Reason::UnterminatedQuote('\'')));
    }

    #[test]
    fn text_after_closing_quote_is_rejected() {
        assert_eq!(reason("A='a'b"), Reason::TextAfterClosingQuote('b'));
        assert_eq!(reason("A='a' 'b'"), Reason::TextAfterClosingQuote('\''));
        assert_eq!(reason("A=\"a\" # note"), Reason::TextAfterClosingQuote('#'));
    }

    #[test]
    fn quotes_inside_unquoted_value_are_rejected() {
        assert_eq!(reason("A=it's"), Reason::QuoteInUnquotedValue('\''));
        assert_eq!(reason("A=a\"b\""), Reason::QuoteInUnquotedValue('"'));
    }

    #[test]
    fn backslash_in_unquoted_value_is_rejected() {
        assert_eq!(reason("A=a\\b"), Reason::BackslashInUnquotedValue);
        assert_eq!(reason("A=a\\ "), Reason::BackslashInUnquotedValue);
    }

    #[test]
    fn unknown_double_quote_escape_is_rejected() {
        assert_eq!(reason(r#"A="a\nb""#), Reason::UnsupportedEscape('n'));
        assert_eq!(reason(r#"A="\'""#), Reason::UnsupportedEscape('\''));
    }

    #[test]
    fn inline_comment_after_blank_is_rejected() {
        assert_eq!(reason("A=1 # one"), Reason::InlineComment);
        assert_eq!(reason("A=1\t#"), Reason::InlineComment);
        assert_eq!(reason("A= #x"), Reason::InlineComment);
    }

    #[test]
    fn missing_equals_is_rejected() {
        assert_eq!(rejection("\n\nVMSRS_POLICY"), (3, Reason::MissingEquals));
        assert_eq!(reason("just words"), Reason::MissingEquals);
    }

    #[test]
    fn empty_key_is_rejected() {
        assert_eq!(reason("=1"), Reason::EmptyKey);
        assert_eq!(reason("  =1"), Reason::EmptyKey);
    }

    #[test]
    fn blank_before_equals_is_rejected() {
        assert_eq!(reason("A =1"), Reason::BlankBeforeEquals);
        assert_eq!(reason("A\t= 1"), Reason::BlankBeforeEquals);
    }

    #[test]
    fn key_with_spaces_or_bad_characters_is_rejected() {
        assert_eq!(reason("MY KEY=1"), Reason::InvalidKey("MY KEY".into()));
        assert_eq!(reason("1A=1"), Reason::InvalidKey("1A".into()));
        assert_eq!(reason("A-B=1"), Reason::InvalidKey("A-B".into()));
        assert_eq!(reason("A.B=1"), Reason::InvalidKey("A.B".into()));
        assert_eq!(reason("'A'=1"), Reason::InvalidKey("'A'".into()));
        assert_eq!(reason("ÄB=1"), Reason::InvalidKey("ÄB".into()));
    }

    #[test]
    fn nul_byte_is_rejected_with_its_line() {
        let err = parse_bytes(b"A=1\nB=x\0y\n").unwrap_err();
        assert_eq!((err.line(), err.reason()), (Some(2), Some(&Reason::NulByte)));
        assert_eq!(parse_bytes(b"# \0\n").unwrap_err().reason(), Some(&Reason::NulByte));
    }

    #[test]
    fn invalid_utf8_is_rejected_with_its_line() {
        let err = parse_bytes(b"A=1\n\nB='\xff'\n").unwrap_err();
        assert_eq!((err.line(), err.reason()), (Some(3), Some(&Reason::InvalidUtf8)));
        assert_eq!(parse_bytes(b"# caf\xe9\n").unwrap_err().reason(), Some(&Reason::InvalidUtf8));
    }

    #[test]
    fn carriage_return_is_rejected_even_in_comments() {
        assert_eq!(rejection("A=1\r\n"), (1, Reason::CarriageReturn));
        assert_eq!(reason("# x\rA=1"), Reason::CarriageReturn);
        assert_eq!(reason("A='x\ry'"), Reason::CarriageReturn);
    }

    #[test]
    fn control_characters_in_assignments_are_rejected() {
        assert_eq!(reason("A='x\u{1b}[0m'"), Reason::ControlCharacter('\u{1b}'));
        assert_eq!(reason("A=x\u{7f}"), Reason::ControlCharacter('\u{7f}'));
        assert_eq!(reason("A=x\u{0b}"), Reason::ControlCharacter('\u{0b}'));
    }

    #[test]
    fn byte_order_mark_is_rejected() {
        assert_eq!(rejection("\u{feff}A=1"), (1, Reason::ByteOrderMark));
    }

    #[test]
    fn first_error_is_reported_by_line() {
        assert_eq!(rejection("A=1\nB=2\nC='x\nD='y").0, 3);
    }

    #[test]
    fn syntax_error_displays_path_line_and_reason() {
        let err = parse("A=1\nB='x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "<input>:2: unterminated '-quoted value (quotes must close on the same line)"
        );
        assert!(!err.is_io());
        let err = err.at(Path::new("/etc/vmsrs/x.env"));
        assert!(err.to_string().starts_with("/etc/vmsrs/x.env:2: unterminated"));
    }

    #[test]
    fn quote_prefers_single_quotes_and_falls_back_to_double() {
        assert_eq!(quote("a b$").as_deref(), Some("'a b$'"));
        assert_eq!(quote("it's \"$x\" \\").as_deref(), Some(r#""it's \"\$x\" \\""#));
        assert_eq!(quote("a\nb"), None);
    }

    #[test]
    fn serialize_round_trips() {
        let original = vec![("A".to_owned(), " it's ".to_owned()), ("B".to_owned(), "\\#;".to_owned())];
        let text = serialize(&original).unwrap();
        assert_eq!(parse(&text).unwrap(), original);
        assert_eq!(serialize(&[("1".into(), "x".into())]), None);
    }

    #[test]
    fn key_validity_follows_shell_names() {
        assert!(is_valid_key("_"));
        assert!(is_valid_key("VMSRS_RANGE_0"));
        assert!(!is_valid_key(""));
        assert!(!is_valid_key("0A"));
    }
}
