//! Scenario keys by dotted path (`fabric.link_rate_gbps`, `traffic[0].bytes`), set on the
//! TOML value of a scenario before it is resolved.
//!
//! Sweeps override keys on the TOML *as written* rather than on the resolved `Scenario`, so
//! that every key a later issue adds to scenario files can be swept without touching this
//! module; `Scenario::parse` then validates the result like any hand-written file.

use std::fmt;

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A parsed key path such as `traffic[0].bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPath {
    text: String,
    steps: Vec<Step>,
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl KeyPath {
    /// Parses `a.b[2].c`. Keys are bare TOML keys: ASCII letters, digits, `_` and `-`.
    pub fn parse(text: &str) -> Result<KeyPath, String> {
        let bad = |why: &str| {
            Err(format!(
                "`{text}` is not a key path ({why}); write e.g. `fabric.link_rate_gbps` or `traffic[0].bytes`"
            ))
        };
        if text.is_empty() {
            return bad("empty");
        }
        let mut steps = Vec::new();
        for part in text.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return bad("each part needs a bare key name");
            }
            steps.push(Step::Key(name.to_string()));
            while !rest.is_empty() {
                let Some(close) = rest.find(']') else {
                    return bad("unclosed `[`");
                };
                let Ok(i) = rest[1..close].parse::<usize>() else {
                    return bad("an index is a non-negative integer");
                };
                steps.push(Step::Index(i));
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return bad("text after `]`");
                }
            }
        }
        Ok(KeyPath {
            text: text.to_string(),
            steps,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Sets the value at this path. Missing table keys are created (an optional key absent
    /// from the base can be swept); array entries must exist (an index past the end is an
    /// error, not a silently grown array).
    pub fn set(&self, root: &mut toml::Value, value: toml::Value) -> Result<(), String> {
        let mut cur = root;
        let mut walked = String::new();
        for (n, step) in self.steps.iter().enumerate() {
            let last = n + 1 == self.steps.len();
            let next_is_index = matches!(self.steps.get(n + 1), Some(Step::Index(_)));
            match step {
                Step::Key(k) => {
                    let Some(table) = cur.as_table_mut() else {
                        return Err(format!("`{walked}` is not a table, so it has no key `{k}`"));
                    };
                    if !walked.is_empty() {
                        walked.push('.');
                    }
                    walked.push_str(k);
                    if last {
                        table.insert(k.clone(), value);
                        return Ok(());
                    }
                    if !table.contains_key(k) {
                        if next_is_index {
                            return Err(format!(
                                "`{walked}` is not in the base scenario, so `{}` has no entry to set",
                                self.text
                            ));
                        }
                        table.insert(k.clone(), toml::Value::Table(toml::Table::new()));
                    }
                    cur = table.get_mut(k).expect("present or just inserted");
                }
                Step::Index(i) => {
                    let Some(array) = cur.as_array_mut() else {
                        return Err(format!("`{walked}` is not an array, so it has no [{i}]"));
                    };
                    let len = array.len();
                    if *i >= len {
                        return Err(format!(
                            "index {i} is out of range: `{walked}` has {len} entr{} in the base scenario",
                            if len == 1 { "y" } else { "ies" }
                        ));
                    }
                    walked.push_str(&format!("[{i}]"));
                    if last {
                        array[*i] = value;
                        return Ok(());
                    }
                    cur = &mut array[*i];
                }
            }
        }
        unreachable!("a key path has at least one step")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn base() -> toml::Value {
        toml::from_str(
            "name = \"t\"\n[fabric]\ngpus = 4\n[[traffic]]\nbytes = 1\n[[traffic]]\nbytes = 2\n",
        )
        .unwrap()
    }

    #[test]
    fn sets_nested_keys_and_indices() {
        let check = |path: &str, v: i64, expect: &str| {
            let mut b = base();
            KeyPath::parse(path)
                .unwrap()
                .set(&mut b, toml::Value::Integer(v))
                .unwrap();
            let text = toml::to_string(&b).unwrap();
            assert!(text.contains(expect), "{path}: {text}");
        };
        check("fabric.gpus", 8, "gpus = 8");
        check("traffic[1].bytes", 9, "bytes = 9");
        check("fabric.switch_latency_ns", 5, "switch_latency_ns = 5");
        check("seed", 3, "seed = 3");
    }

    #[rstest]
    #[case::empty("", "empty")]
    #[case::double_dot("fabric..gpus", "bare key")]
    #[case::index_not_a_number("traffic[x].bytes", "non-negative integer")]
    #[case::unclosed_index("traffic[0", "unclosed")]
    #[case::index_out_of_range(
        "traffic[2].bytes",
        "index 2 is out of range: `traffic` has 2 entries"
    )]
    #[case::index_on_a_table("fabric[0]", "`fabric` is not an array")]
    #[case::key_on_a_value("name.x", "`name` is not a table")]
    #[case::not_in_the_base("flows[0].bytes", "`flows` is not in the base scenario")]
    fn bad_paths_say_why(#[case] path: &str, #[case] words: &str) {
        let err = match KeyPath::parse(path) {
            Err(e) => e,
            Ok(p) => p.set(&mut base(), toml::Value::Integer(1)).unwrap_err(),
        };
        assert!(err.contains(words), "{path}: {err}");
    }
}
