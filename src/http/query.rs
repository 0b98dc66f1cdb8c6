//! Percent-decoding and query strings, as Go's `net/url` reads them: `&`-separated pairs,
//! `+` is a space in queries, a pair with a bad escape (or a `;`) is dropped, a key without
//! `=` has an empty value.

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`); `None` on a bad escape.
pub fn percent_decode(text: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let high = hex_value(*bytes.get(index + 1)?)?;
                let low = hex_value(*bytes.get(index + 2)?)?;
                decoded.push(high << 4 | low);
                index += 3;
            }
            b'+' if plus_is_space => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    Some(decoded)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// A parsed query: its pairs in order, repeated keys kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> Query {
        let mut pairs = Vec::new();
        for pair in raw.split('&') {
            if pair.is_empty() || pair.contains(';') {
                continue;
            }
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(key), Some(value)) = (percent_decode(key, true), percent_decode(value, true))
            else {
                continue;
            };
            pairs.push((
                String::from_utf8_lossy(&key).into_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            ));
        }
        Query { pairs }
    }

    /// Whether `key` appears at all (`?verbose`, `?verbose=false` alike).
    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(known, _)| known == key)
    }

    /// The first value of `key` (Go's `Values.Get`).
    pub fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(known, _)| known == key)
            .map(|(_, value)| value.as_str())
    }

    /// Every non-empty value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(known, value)| known == key && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_refuses_bad_ones() {
        assert_eq!(
            percent_decode("/heal%74h", false),
            Some(b"/health".to_vec())
        );
        assert_eq!(percent_decode("a+b", false), Some(b"a+b".to_vec()));
        assert_eq!(percent_decode("a+b", true), Some(b"a b".to_vec()));
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
    }

    #[test]
    fn parses_queries_like_go() {
        let query =
            Query::parse("exclude=NOSPACE&exclude=&verbose&exclude=%zz&a;b=c&exclude=x%20y");
        assert_eq!(query.all("exclude").collect::<Vec<_>>(), ["NOSPACE", "x y"]);
        assert!(query.has("verbose"));
        assert_eq!(query.first("verbose"), Some(""));
        assert!(!query.has("a"));
        assert_eq!(
            Query::parse("serializable=true").first("serializable"),
            Some("true")
        );
        assert_eq!(Query::parse(""), Query::default());
    }
}
