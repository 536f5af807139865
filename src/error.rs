//! The one error users see for bad input: which file, which key (or line), what is allowed.
//!
//! Every input problem in the library becomes an [`InputError`]; the CLI prints it on one
//! line and exits with status 2. A panic is always a bug, never a reaction to input.

use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// The file as the user named it, or `<embedded default>` / `<command line>`.
    pub file: String,
    /// The key path (`links[2].rate_gbps`) or `line 17`; empty when the file as a whole is bad.
    pub key: String,
    pub message: String,
}

impl InputError {
    pub fn new(
        file: impl Into<String>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        InputError {
            file: file.into(),
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn for_path(path: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        InputError::new(path.display().to_string(), key, message)
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

/// A message on one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
