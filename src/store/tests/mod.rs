//! Tests of the page store: a model test against `BTreeMap`, crash images of the commit
//! protocol, corruption reporting, and readers of old snapshots.

mod corruption;
mod crash;
mod defrag;
pub mod invariants;
mod model;
mod readers;
pub mod support;
