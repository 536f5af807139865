//! Stable point ids: FNV-1a (64 bit) over a canonical text of the point's scenario.
//!
//! Stable across runs, platforms and Rust versions (unlike `DefaultHasher`): the canonical
//! text sorts table keys, writes integers in decimal and floats in Rust's shortest
//! round-trip form, and FNV-1a is a fixed byte-wise function. 64 bits make an accidental
//! collision in a sweep of a million points about a 3e-8 event; expansion checks for
//! duplicate ids anyway, so a collision is reported, never silently merged.

/// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The canonical text of a TOML value: JSON-like, keys sorted, no whitespace.
///
/// A float with an integral value (within ±2^53) is written as that integer, so
/// `link_rate_gbps = 400` and `400.0` (both resolve to the same rate) get the same id.
pub fn canonical(v: &toml::Value) -> String {
    let mut s = String::new();
    write_canonical(v, &mut s);
    s
}

fn write_canonical(v: &toml::Value, s: &mut String) {
    match v {
        toml::Value::String(x) => s.push_str(&serde_json::to_string(x).expect("a string")),
        toml::Value::Integer(i) => s.push_str(&i.to_string()),
        toml::Value::Float(f) => {
            if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
                s.push_str(&(*f as i64).to_string());
            } else {
                s.push_str(&format!("{f:?}"));
            }
        }
        toml::Value::Boolean(b) => s.push_str(if *b { "true" } else { "false" }),
        toml::Value::Datetime(d) => s.push_str(&format!("\"{d}\"")),
        toml::Value::Array(a) => {
            s.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                write_canonical(x, s);
            }
            s.push(']');
        }
        toml::Value::Table(t) => {
            let mut keys: Vec<&String> = t.keys().collect();
            keys.sort();
            s.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&serde_json::to_string(k).expect("a string"));
                s.push(':');
                write_canonical(&t[k], s);
            }
            s.push('}');
        }
    }
}

/// The id of a point: 16 lowercase hex digits.
pub fn point_id(canonical_text: &str) -> String {
    format!("{:016x}", fnv1a64(canonical_text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_published_vectors() {
        // Test vectors of the FNV reference (isthe.com/chongo/tech/comp/fnv).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn canonical_text_ignores_key_order_and_int_float_spelling() {
        let a: toml::Value = toml::from_str("b = 400\na = { y = 1.5, x = \"s\" }").unwrap();
        let b: toml::Value = toml::from_str("a = { x = \"s\", y = 1.5 }\nb = 400.0").unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), r#"{"a":{"x":"s","y":1.5},"b":400}"#);
        // Pinned: a change here changes every point id, so every resume and merge.
        assert_eq!(
            point_id(&canonical(&a)),
            point_id(r#"{"a":{"x":"s","y":1.5},"b":400}"#)
        );
        assert_eq!(point_id("x"), format!("{:016x}", fnv1a64(b"x")));
    }
}
