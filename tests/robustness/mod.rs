//! The robustness campaign's parts (etcd's `tests/robustness`, Jepsen-style): real members,
//! concurrent recorded traffic and watchers, seeded faults, then model checks of the history.
//!
//! A run, in order:
//! 1. `run.rs` starts 3 members (`--snapshot-count 100`: snapshots, log compaction and
//!    snapshot installs all the time), capstan behind the harness's peer proxies or an etcd
//!    binary side by side;
//! 2. `watch.rs` starts watchers of the prefix from revision 1; `traffic.rs` starts 8 clients
//!    (puts, gets, serializable gets, prefix ranges, deletes, compare-and-set txns, leases) and a
//!    maintenance task (compactions, defragmentations); `client.rs` records every request in a
//!    [`history::Record`], its error classified definite or unknown by the linearizability
//!    module's one table;
//! 3. `faults.rs` injects one seeded fault per round (kill -9 of a member, of the leader, of
//!    all; SIGSTOP; peer blackhole; crash failpoints) and watches every member process;
//! 4. `run.rs` heals, revokes the leases left, writes a sentinel every watcher must reach, and
//!    `checks.rs` and `watch.rs` judge: linearizability of the register keys, watch
//!    guarantees, acknowledged writes in the history, every read against the replayed history,
//!    equal dumps and HashKV, no unexpected exit or panic; `self_test.rs` plants one fault of
//!    each kind in a copy of the run's own history and requires the checks to catch it;
//! 5. `report.rs` turns runs into figures and a Markdown summary (`campaign.sh` files it
//!    under `tuning/results/`).
#![allow(dead_code)]

pub mod checks;
pub mod client;
pub mod faults;
pub mod history;
pub mod report;
pub mod run;
pub mod self_test;
pub mod traffic;
pub mod watch;

#[cfg(test)]
mod tests;
