//! Which keys a `key`/`range_end` pair selects.
//!
//! etcd's rules (`mkGteRange` and the tree index's `visit`):
//! * empty `range_end`: exactly `key`;
//! * `range_end == "\0"`: every key `>= key` (so `key = "\0", range_end = "\0"`
//!   is every key, since stored keys are never empty);
//! * otherwise the half-open byte interval `[key, range_end)`, empty when
//!   `range_end <= key`.

use std::ops::Bound;

use bytes::Bytes;

/// The keys selected by a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    /// One key.
    Single(Bytes),
    /// Every key `>= start`, and `< end` when `end` is given.
    Span { start: Bytes, end: Option<Bytes> },
}

impl KeyRange {
    /// Interprets a request's `key` and `range_end`.
    pub fn new(key: &Bytes, range_end: &Bytes) -> Self {
        if range_end.is_empty() {
            KeyRange::Single(key.clone())
        } else if range_end.as_ref() == b"\0" {
            KeyRange::Span {
                start: key.clone(),
                end: None,
            }
        } else {
            KeyRange::Span {
                start: key.clone(),
                end: Some(range_end.clone()),
            }
        }
    }

    /// True when the range selects no key at all (`range_end <= key`).
    pub fn is_empty(&self) -> bool {
        match self {
            KeyRange::Single(_) => false,
            KeyRange::Span { start, end } => end.as_ref().is_some_and(|end| end <= start),
        }
    }

    /// Whether `key` falls inside the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(single) => single.as_ref() == key,
            KeyRange::Span { start, end } => {
                key >= start.as_ref() && end.as_ref().is_none_or(|end| key < end.as_ref())
            }
        }
    }

    /// Back to `key`/`range_end` in Range's conventions.
    pub fn as_request_range(&self) -> (Bytes, Bytes) {
        match self {
            KeyRange::Single(key) => (key.clone(), Bytes::new()),
            KeyRange::Span { start, end: None } => (start.clone(), Bytes::from_static(b"\0")),
            KeyRange::Span {
                start,
                end: Some(end),
            } => (start.clone(), end.clone()),
        }
    }

    /// Map bounds for `OrdMap::range`; only valid when `!self.is_empty()`.
    pub fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        match self {
            KeyRange::Single(key) => (Bound::Included(key.as_ref()), Bound::Included(key.as_ref())),
            KeyRange::Span { start, end } => (
                Bound::Included(start.as_ref()),
                match end {
                    Some(end) => Bound::Excluded(end.as_ref()),
                    None => Bound::Unbounded,
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(key: &'static [u8], end: &'static [u8]) -> KeyRange {
        KeyRange::new(&Bytes::from_static(key), &Bytes::from_static(end))
    }

    #[test]
    fn empty_range_end_selects_one_key() {
        let single = range(b"foo", b"");
        assert!(single.contains(b"foo"));
        assert!(!single.contains(b"foo0"));
        assert!(!single.is_empty());
    }

    #[test]
    fn nul_range_end_selects_everything_from_key() {
        let from_b = range(b"b", b"\0");
        assert!(!from_b.contains(b"a"));
        assert!(from_b.contains(b"b"));
        assert!(from_b.contains(b"\xff\xff"));
        let everything = range(b"\0", b"\0");
        assert!(everything.contains(b"\0"));
        assert!(everything.contains(b"a"));
    }

    #[test]
    fn half_open_interval_is_bytewise() {
        let prefix = range(b"a", b"b");
        assert!(prefix.contains(b"a"));
        assert!(prefix.contains(b"a\xff"));
        assert!(!prefix.contains(b"b"));
        assert!(range(b"b", b"a").is_empty());
        assert!(range(b"b", b"b").is_empty());
    }
}
