//! TOML input: text to a table or to a typed value, every problem an [`InputError`] that
//! names the file, the key path and the line. Config (scenarios, fabric files), sweep files,
//! model files and serving's traffic files all read their TOML here.

use crate::error::{InputError, one_line};

/// Parses TOML text into a table. A syntax error names its line and, where that line sets
/// a key, the key's path (`traffic[0].bytes (line 14)`): an integer too large for TOML's
/// 64 bits fails here, before any key is deserialized.
pub fn parse_table(text: &str, origin: &str) -> Result<toml::Table, InputError> {
    text.parse::<toml::Table>()
        .map_err(|e| syntax_error(text, origin, e.span(), e.message()))
}

/// Deserializes TOML text into `T`, naming the key path and line of the first problem.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, InputError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| syntax_error(text, origin, e.span(), e.message()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let key = if path == "." { String::new() } else { path };
        let at = line_of(text, inner.span());
        let key = match (key.is_empty(), at.is_empty()) {
            (true, _) => at,
            (false, true) => key,
            (false, false) => format!("{key} ({at})"),
        };
        InputError::new(origin, key, toml_message(inner.message()))
    })
}

/// An error of the TOML parser at `span`: the line, with the key that line sets when it
/// can be told.
fn syntax_error(
    text: &str,
    origin: &str,
    span: Option<std::ops::Range<usize>>,
    message: &str,
) -> InputError {
    let at = line_of(text, span.clone());
    let key = span
        .filter(|s| s.start <= text.len())
        .and_then(|s| key_at_line(text, text[..s.start].matches('\n').count()));
    let key = match key {
        Some(k) if !at.is_empty() => format!("{k} ({at})"),
        _ => at,
    };
    InputError::new(origin, key, toml_message(message))
}

/// `line N` of the byte offset where `span` starts; empty without one.
pub fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) if s.start <= text.len() => {
            format!("line {}", text[..s.start].matches('\n').count() + 1)
        }
        _ => String::new(),
    }
}

/// The TOML library's message on one line, with the one that hides what is allowed (an
/// integer beyond 64 bits reads as an `i128` the document model cannot hold) reworded.
fn toml_message(message: &str) -> String {
    let m = one_line(message);
    match m
        .strip_prefix("invalid type: integer `")
        .and_then(|r| r.split_once("` as i128"))
    {
        Some((n, _)) => format!(
            "{n} does not fit a TOML integer: allowed {} ..= {}",
            i64::MIN,
            i64::MAX
        ),
        None => m,
    }
}

/// The dotted path of the key that line `line` (0-based) of `text` sets, as far as the
/// lines before it tell: `[table]` and `[[array]]` headers (the array's entry counted) and
/// a `key = ...` at that line. `None` whenever that cannot be told for sure (the line sets
/// no key, or a multi-line string or value is open), so a key is never guessed.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let target = lines.get(line)?;
    let mut table = String::new();
    let mut entries: Vec<(String, usize)> = Vec::new();
    let mut depth = 0i64;
    for l in &lines[..line] {
        if l.contains("\"\"\"") || l.contains("'''") {
            return None;
        }
        let code = strip_comment(l);
        let t = code.trim();
        if depth == 0 && t.starts_with('[') {
            let array = t.starts_with("[[");
            let name = t.trim_start_matches('[').trim_end_matches(']').trim();
            if !bare_path(name) || !t.ends_with(']') {
                return None;
            }
            table = if array {
                let n = match entries.iter_mut().find(|(k, _)| k == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        entries.push((name.to_string(), 0));
                        0
                    }
                };
                format!("{name}[{n}]")
            } else {
                name.to_string()
            };
            continue;
        }
        depth += brackets(code);
    }
    if depth != 0 {
        return None;
    }
    let (k, _) = strip_comment(target).split_once('=')?;
    let k = k.trim();
    if !bare_path(k) {
        return None;
    }
    Some(if table.is_empty() {
        k.to_string()
    } else {
        format!("{table}.{k}")
    })
}

/// A line up to a `#` outside strings.
fn strip_comment(l: &str) -> &str {
    let mut quote = None;
    for (i, c) in l.char_indices() {
        match (quote, c) {
            (None, '#') => return &l[..i],
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    l
}

/// Opening minus closing brackets and braces outside strings.
fn brackets(code: &str) -> i64 {
    let mut quote = None;
    let mut n = 0;
    for c in code.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '[' | '{') => n += 1,
            (None, ']' | '}') => n -= 1,
            _ => {}
        }
    }
    n
}

/// A dotted key of bare words (letters, digits, `_`, `-`).
fn bare_path(k: &str) -> bool {
    !k.is_empty()
        && k.split('.').all(|w| {
            let w = w.trim();
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_at_lines() {
        let text = "a = 1\n[x]\nb = 2 # c = 3\n[[t]]\nc = 1\n[[t]]\nm = [\n[1],\n]\nd = 4\n[x.y]\ne = \"#[\"\n";
        let at = |l| key_at_line(text, l);
        assert_eq!(at(0).as_deref(), Some("a"));
        assert_eq!(at(1), None);
        assert_eq!(at(2).as_deref(), Some("x.b"));
        assert_eq!(at(4).as_deref(), Some("t[0].c"));
        assert_eq!(at(6).as_deref(), Some("t[1].m"));
        assert_eq!(at(7), None);
        assert_eq!(at(9).as_deref(), Some("t[1].d"));
        assert_eq!(at(11).as_deref(), Some("x.y.e"));
        assert_eq!(key_at_line("s = \"\"\"\nx\n\"\"\"\nk = 1\n", 3), None);
    }

    #[test]
    fn an_integer_beyond_64_bits_names_its_key() {
        let e = parse_table("[[t]]\nbytes = 99999999999999999999\n", "f.toml").unwrap_err();
        assert_eq!(e.file, "f.toml");
        assert_eq!(e.key, "t[0].bytes (line 2)");
        assert!(e.message.contains("9223372036854775807"), "{e}");
    }
}
