//! The position of one change in the history.

/// A change's place in history: `main` is the store revision the client sees
/// (one per applied write request or txn); `sub` numbers the changes made
/// within that request, starting at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}
