//! Errors for everything a user writes: flow text and YAML.
//!
//! A [`ParseError`] carries the line and column (both 1-based) where the
//! problem starts and what was expected; [`ParseError::in_file`] attaches the
//! file name so that `Display` prints the `file:line:col: message` form that
//! compilers use and the CLI promises (DESIGN.md §4).

use std::fmt;

/// A located input error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// File the input came from, when known.
    pub file: Option<String>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What went wrong and what was expected.
    pub msg: String,
}

impl ParseError {
    /// An error at `line:col` with a message.
    pub fn new(line: usize, col: usize, msg: impl Into<String>) -> Self {
        ParseError { file: None, line, col, msg: msg.into() }
    }

    /// The same error, naming the file it came from.
    pub fn in_file(mut self, file: &str) -> Self {
        self.file = Some(file.to_string());
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().unwrap_or("<input>");
        write!(f, "{}:{}:{}: {}", file, self.line, self.col, self.msg)
    }
}

impl std::error::Error for ParseError {}
