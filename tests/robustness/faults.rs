//! The faults: a seeded plan of one fault per round, and the driver that injects them into a
//! running cluster, watches every member process, and measures whole-cluster restarts.
//!
//! A member may exit on its own only through an armed crash failpoint (status
//! [`CRASH_EXIT_CODE`]); any other exit is a violation, reported with the end of its log.

use super::client::connect;
use super::history::{ms, Clock, Time};
use super::traffic::Control;
use crate::cluster::{Cluster, Link, EVENTUALLY};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a member that reached a `crash` failpoint exits.
pub const CRASH_EXIT_CODE: i32 = capstan_wal::failpoint::CRASH_EXIT_CODE;
/// How capstan refuses to start with a failpoint name it does not know.
pub const REFUSED_EXIT_CODE: i32 = 2;
/// The environment variable that arms failpoints in capstan.
pub const FAILPOINT_ENV: &str = capstan_wal::failpoint::FAILPOINTS_ENV_VAR;
/// How long the driver looks for a leader before it picks a member of the plan instead.
const LEADER_SEARCH: Duration = Duration::from_secs(10);
/// How often the driver looks at the member processes while it waits.
const EXIT_POLL: Duration = Duration::from_millis(100);
/// Lines of a member's log printed with a violation.
pub const LOG_TAIL_LINES: usize = 40;

/// Every crash failpoint capstan defines, each reached by the traffic, a compaction, a
/// defragmentation, WAL rotations or a snapshot install (see [`Trigger`]).
pub const FAILPOINTS: &[&str] = capstan_wal::failpoint::NAMES;
/// Failpoints where `crash-lose-unsynced` also drops the WAL bytes not yet synced.
pub const LOSE_UNSYNCED_FAILPOINTS: [&str; 2] = ["walBeforeSync", "raftAfterSave"];
/// The largest hit count a failpoint is armed with (`N*crash`: crash at the N-th hit, N drawn
/// from 1..=this), for points the traffic passes all the time.
const FAILPOINT_HITS_MAX: u32 = 20;
/// The same for points passed a few times a round (defragmentations, WAL rotations).
const FAILPOINT_HITS_MAX_RARE: u32 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// kill -9 a random member, restart it.
    KillMember,
    /// kill -9 the leader, restart it.
    KillLeader,
    /// kill -9 every member, restart them together; measures restart → first write.
    KillAll,
    /// SIGSTOP a random member, then SIGCONT.
    PauseMember,
    /// SIGSTOP the leader, then SIGCONT.
    PauseLeader,
    /// Blackhole a member's peer traffic both ways (long enough to need a snapshot), heal.
    Blackhole,
    /// Restart a member with a crash failpoint armed; restart it without once it crashed.
    Failpoint,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillMember => "kill -9 member",
            FaultKind::KillLeader => "kill -9 leader",
            FaultKind::KillAll => "kill -9 all, restart together",
            FaultKind::PauseMember => "SIGSTOP member",
            FaultKind::PauseLeader => "SIGSTOP leader",
            FaultKind::Blackhole => "blackhole member's peers",
            FaultKind::Failpoint => "crash failpoint",
        }
    }
}

/// Every fault kind, for capstan behind peer proxies.
pub const CAPSTAN_FAULTS: [FaultKind; 7] = [
    FaultKind::KillMember,
    FaultKind::KillLeader,
    FaultKind::KillAll,
    FaultKind::PauseMember,
    FaultKind::PauseLeader,
    FaultKind::Blackhole,
    FaultKind::Failpoint,
];
/// The kinds that need neither failpoints nor peer proxies (etcd side by side).
pub const PROCESS_FAULTS: [FaultKind; 5] = [
    FaultKind::KillMember,
    FaultKind::KillLeader,
    FaultKind::KillAll,
    FaultKind::PauseMember,
    FaultKind::PauseLeader,
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failpoint {
    pub name: &'static str,
    pub hits: u32,
    pub lose_unsynced: bool,
}

impl Failpoint {
    /// `CAPSTAN_FAILPOINTS`'s value: `NAME=N*crash` or `NAME=N*crash-lose-unsynced`.
    pub fn env_value(&self) -> String {
        let action = if self.lose_unsynced {
            "crash-lose-unsynced"
        } else {
            "crash"
        };
        format!("{}={}*{action}", self.name, self.hits)
    }

    fn trigger(&self) -> Trigger {
        match self.name {
            name if name.starts_with("compact") => Trigger::Compactions,
            name if name.starts_with("defrag") => Trigger::Defrags,
            name if name.contains("Rotate") || name.contains("WALRelease") => Trigger::Rotations,
            // A member rebuilds its page store from a snapshot it installs.
            name if name.contains("ApplySnap") || name.starts_with("replace") => {
                Trigger::SnapshotInstall
            }
            _ => Trigger::Traffic,
        }
    }
}

/// What makes a failpoint's code run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// Writes and the snapshots they cause (every `--snapshot-count` entries).
    Traffic,
    /// Compactions, every few hundred milliseconds while armed.
    Compactions,
    /// Defragmentations of the armed member, every few hundred milliseconds.
    Defrags,
    /// WAL segment rotations and releases behind snapshots (small segments: about one a
    /// second).
    Rotations,
    /// The armed member is cut off until the leader must send it a snapshot.
    SnapshotInstall,
}

impl Trigger {
    /// The largest N of `N*crash` that one round can reach.
    fn hits_max(self) -> u32 {
        match self {
            Trigger::Traffic | Trigger::Compactions => FAILPOINT_HITS_MAX,
            Trigger::Defrags | Trigger::Rotations => FAILPOINT_HITS_MAX_RARE,
            // One install per round.
            Trigger::SnapshotInstall => 1,
        }
    }
}

/// One round's fault.
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: FaultKind,
    /// The member (for the leader kinds: used only if no leader is found).
    pub member: usize,
    /// Healthy time before the fault.
    pub calm: Duration,
    /// How long the fault lasts (a failpoint: how long the driver waits for the crash).
    pub hold: Duration,
    pub failpoint: Option<Failpoint>,
}

/// The plan of `rounds` faults. The kind of round `r` is `kinds[((seed mod K) * rounds + r)
/// mod K]`: consecutive seeds take consecutive kinds, so `ceil(K / rounds)` consecutive seeds
/// cover every kind. Everything else comes from the seed's generator.
pub fn plan(seed: u64, rounds: usize, kinds: &[FaultKind], members: usize) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let count = kinds.len();
    let first = (seed % count as u64) as usize * rounds;
    (0..rounds)
        .map(|round| {
            let kind = kinds[(first + round) % count];
            let hold_ms = match kind {
                FaultKind::KillMember | FaultKind::KillLeader => rng.gen_range(300..2000),
                FaultKind::KillAll => rng.gen_range(200..1000),
                FaultKind::PauseMember | FaultKind::PauseLeader => rng.gen_range(1000..3000),
                FaultKind::Blackhole => rng.gen_range(3000..5000),
                FaultKind::Failpoint => rng.gen_range(3000..5000),
            };
            let failpoint = (kind == FaultKind::Failpoint).then(|| {
                let lose_unsynced = rng.gen_bool(0.2);
                let name = if lose_unsynced {
                    LOSE_UNSYNCED_FAILPOINTS[rng.gen_range(0..LOSE_UNSYNCED_FAILPOINTS.len())]
                } else {
                    FAILPOINTS[rng.gen_range(0..FAILPOINTS.len())]
                };
                let mut failpoint = Failpoint {
                    name,
                    hits: 1,
                    lose_unsynced,
                };
                failpoint.hits = rng.gen_range(1..=failpoint.trigger().hits_max());
                failpoint
            });
            Fault {
                kind,
                member: rng.gen_range(0..members),
                calm: Duration::from_millis(rng.gen_range(500..1500)),
                hold: Duration::from_millis(hold_ms),
                failpoint,
            }
        })
        .collect()
}

/// Whether an armed failpoint crashed its member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailpointOutcome {
    /// The member exited with [`CRASH_EXIT_CODE`].
    Crashed,
    /// Not reached while armed (the member was then restarted without it).
    NotReached,
    /// The server refused to start with it (unknown name: exit [`REFUSED_EXIT_CODE`]).
    Refused,
}

#[derive(Clone, Debug)]
pub struct FailpointResult {
    pub member: usize,
    pub setting: String,
    pub outcome: FailpointOutcome,
}

/// One whole-cluster restart: when the members were started again, and when the first write
/// of a fresh probe client was acknowledged.
#[derive(Clone, Debug)]
pub struct RestartSample {
    pub started: Time,
    pub probe_acknowledged: Option<Time>,
}

/// When one round's fault was in effect: from its injection until a leader was agreed on
/// again after healing.
#[derive(Clone, Debug)]
pub struct FaultWindow {
    pub kind: FaultKind,
    /// The member it hit; `None`: every member.
    pub member: Option<usize>,
    pub from: Time,
    pub to: Time,
}

/// Injects faults into a cluster and watches its processes.
pub struct Driver<'a> {
    pub cluster: &'a mut Cluster,
    runtime: &'a tokio::runtime::Runtime,
    clock: Clock,
    control: Arc<Control>,
    /// Per member: the failpoint setting it runs with.
    armed: Vec<Option<String>>,
    pub timeline: Vec<(Time, String)>,
    pub violations: Vec<String>,
    pub injected: BTreeMap<&'static str, usize>,
    pub failpoints: Vec<FailpointResult>,
    pub restarts: Vec<RestartSample>,
    pub windows: Vec<FaultWindow>,
}

impl<'a> Driver<'a> {
    pub fn new(
        cluster: &'a mut Cluster,
        runtime: &'a tokio::runtime::Runtime,
        clock: Clock,
        control: Arc<Control>,
    ) -> Driver<'a> {
        let members = cluster.size();
        Driver {
            cluster,
            runtime,
            clock,
            control,
            armed: vec![None; members],
            timeline: Vec::new(),
            violations: Vec::new(),
            injected: BTreeMap::new(),
            failpoints: Vec::new(),
            restarts: Vec::new(),
            windows: Vec::new(),
        }
    }

    pub fn note(&mut self, text: String) {
        let now = self.clock.now();
        eprintln!("[{}] {text}", ms(now));
        self.timeline.push((now, text));
    }

    pub fn timeline_text(&self) -> String {
        self.timeline
            .iter()
            .map(|(time, text)| format!("  [{}] {text}\n", ms(*time)))
            .collect()
    }

    fn log_tail(&self, member: usize) -> String {
        let log = self.cluster.log(member);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Sleeps `duration`, looking at the member processes all along.
    pub fn sleep_watching(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        loop {
            self.check_exits();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(EXIT_POLL));
        }
    }

    /// Like [`sleep_watching`](Self::sleep_watching), but returns as soon as `member`'s armed
    /// failpoint crashed it.
    fn sleep_until_crash(&mut self, member: usize, duration: Duration) {
        let deadline = Instant::now() + duration;
        loop {
            self.check_exits();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.armed[member].is_none() {
                return;
            }
            std::thread::sleep(left.min(EXIT_POLL));
        }
    }

    /// Reaps members that exited on their own: an armed crash failpoint's exit is expected,
    /// anything else is a violation.
    pub fn check_exits(&mut self) {
        for member in 0..self.cluster.size() {
            if let Some(status) = self.cluster.poll_exit(member) {
                self.exited(member, status);
            }
        }
    }

    fn exited(&mut self, member: usize, status: ExitStatus) {
        let armed = self.armed[member].take();
        match (armed, status.code()) {
            (Some(setting), Some(CRASH_EXIT_CODE)) => {
                self.note(format!(
                    "n{} crashed at its failpoint ({setting})",
                    member + 1
                ));
                self.failpoints.push(FailpointResult {
                    member,
                    setting,
                    outcome: FailpointOutcome::Crashed,
                });
            }
            (Some(setting), Some(REFUSED_EXIT_CODE)) => {
                self.note(format!("n{} refused {setting}", member + 1));
                self.violations.push(format!(
                    "n{} refused to start with {FAILPOINT_ENV}={setting} (exit {REFUSED_EXIT_CODE}: \
                     unknown failpoint?); log tail:\n{}",
                    member + 1,
                    self.log_tail(member)
                ));
                self.failpoints.push(FailpointResult {
                    member,
                    setting,
                    outcome: FailpointOutcome::Refused,
                });
            }
            (armed, _) => {
                self.note(format!("n{} exited with {status}", member + 1));
                self.violations.push(format!(
                    "n{} exited with {status} ({}); log tail:\n{}",
                    member + 1,
                    match armed {
                        Some(setting) =>
                            format!("armed with {setting}, which crashes with {CRASH_EXIT_CODE}"),
                        None => "no fault was armed on it".to_string(),
                    },
                    self.log_tail(member)
                ));
            }
        }
    }

    /// Members that run and are not stopped.
    fn live(&self) -> Vec<usize> {
        self.cluster
            .all()
            .into_iter()
            .filter(|&i| {
                self.cluster.members[i].is_running() && !self.cluster.members[i].is_paused()
            })
            .collect()
    }

    /// The leader the live members agree on, if they do within `within`.
    pub fn leader(&mut self, within: Duration) -> Option<usize> {
        let deadline = Instant::now() + within;
        loop {
            let live = self.live();
            if live.len() * 2 > self.cluster.size() {
                let (statuses, _) = self.cluster.statuses(&live);
                if let Some(leadership) = self.cluster.agreement(&live, &statuses) {
                    return Some(leadership.leader);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.sleep_watching(Duration::from_millis(200));
        }
    }

    fn target(&mut self, fault: &Fault, at_leader: bool) -> (usize, &'static str) {
        if !at_leader {
            return (fault.member, "member");
        }
        match self.leader(LEADER_SEARCH) {
            Some(leader) => (leader, "leader"),
            None => (fault.member, "member: no leader found"),
        }
    }

    /// Starts every stopped member again and resumes paused ones (without failpoints).
    pub fn revive(&mut self) {
        self.check_exits();
        for member in self.cluster.all() {
            if self.cluster.members[member].is_paused() {
                self.cluster.resume(member);
            }
            if !self.cluster.members[member].is_running() {
                self.note(format!("restart n{}", member + 1));
                self.armed[member] = None;
                self.cluster.restart(member);
            }
        }
    }

    /// One round: calm, the fault, healing; then a leader must be agreed on again.
    pub fn run(&mut self, fault: &Fault, proxied: bool) {
        self.sleep_watching(fault.calm);
        *self.injected.entry(fault.kind.name()).or_default() += 1;
        let from = self.clock.now();
        let mut hit = Some(fault.member);
        match fault.kind {
            FaultKind::KillMember | FaultKind::KillLeader => {
                let (member, role) = self.target(fault, fault.kind == FaultKind::KillLeader);
                hit = Some(member);
                self.note(format!("kill -9 n{} ({role})", member + 1));
                self.cluster.kill9(member);
                self.sleep_watching(fault.hold);
            }
            FaultKind::KillAll => {
                hit = None;
                self.kill_all(fault.hold);
            }
            FaultKind::PauseMember | FaultKind::PauseLeader => {
                let (member, role) = self.target(fault, fault.kind == FaultKind::PauseLeader);
                hit = Some(member);
                self.note(format!("SIGSTOP n{} ({role})", member + 1));
                self.cluster.pause(member);
                self.sleep_watching(fault.hold);
                self.note(format!("SIGCONT n{}", member + 1));
                self.cluster.resume(member);
            }
            FaultKind::Blackhole => {
                assert!(proxied, "blackholes need the peer proxies");
                let member = fault.member;
                self.note(format!("blackhole n{}'s peer traffic", member + 1));
                self.cluster.isolate(member, Link::Blackhole);
                self.sleep_watching(fault.hold);
                self.cluster.heal();
                self.note("heal".to_string());
            }
            FaultKind::Failpoint => {
                let failpoint = fault
                    .failpoint
                    .clone()
                    .expect("a failpoint fault names one");
                self.failpoint(fault.member, &failpoint, fault.hold, proxied);
            }
        }
        self.revive();
        match self.leader(EVENTUALLY) {
            Some(leader) => self.note(format!("n{} leads", leader + 1)),
            None => {
                let text = format!(
                    "no leader agreed on within {EVENTUALLY:?} after {}:\n{}",
                    fault.kind.name(),
                    self.cluster.log_tails(20)
                );
                self.note("no leader".to_string());
                self.violations.push(text);
            }
        }
        self.windows.push(FaultWindow {
            kind: fault.kind,
            member: hit,
            from,
            to: self.clock.now(),
        });
    }

    /// kill -9 every member, wait `down`, start them together while a probe client writes
    /// until one write is acknowledged.
    fn kill_all(&mut self, down: Duration) {
        self.note("kill -9 every member".to_string());
        for member in self.cluster.all() {
            self.cluster.kill9(member);
            self.armed[member] = None;
        }
        std::thread::sleep(down);
        let urls: Vec<String> = self
            .cluster
            .members
            .iter()
            .map(|member| member.url())
            .collect();
        let started = self.clock.now();
        self.note("start every member".to_string());
        let probe = self
            .runtime
            .spawn(probe_first_write(urls, self.clock, EVENTUALLY));
        let all = self.cluster.all();
        self.cluster.restart_together(&all);
        let acknowledged = self.runtime.block_on(probe).unwrap_or(None);
        match acknowledged {
            Some(at) => self.note(format!(
                "first probe write acknowledged {} after the restart",
                ms(at - started)
            )),
            None => self.violations.push(format!(
                "no write acknowledged within {EVENTUALLY:?} of restarting every member"
            )),
        }
        self.restarts.push(RestartSample {
            started,
            probe_acknowledged: acknowledged,
        });
    }

    fn failpoint(&mut self, member: usize, failpoint: &Failpoint, hold: Duration, proxied: bool) {
        let setting = failpoint.env_value();
        self.note(format!(
            "restart n{} with {FAILPOINT_ENV}={setting}",
            member + 1
        ));
        self.armed[member] = Some(setting.clone());
        if let Err(status) = self
            .cluster
            .restart_with_env(member, &[(FAILPOINT_ENV, setting.as_str())])
        {
            // Exited before it was ready: crashed at the point, or refused it.
            self.exited(member, status);
            return;
        }
        match failpoint.trigger() {
            Trigger::Traffic | Trigger::Rotations => self.sleep_until_crash(member, hold),
            Trigger::Compactions => {
                self.control.compact_fast.store(true, Ordering::SeqCst);
                self.sleep_until_crash(member, hold);
                self.control.compact_fast.store(false, Ordering::SeqCst);
            }
            Trigger::Defrags => {
                self.control
                    .defrag_member
                    .store(member as i64, Ordering::SeqCst);
                self.sleep_until_crash(member, hold);
                self.control.defrag_member.store(-1, Ordering::SeqCst);
            }
            Trigger::SnapshotInstall => {
                assert!(
                    proxied,
                    "a snapshot install is forced through the peer proxies"
                );
                self.note(format!(
                    "blackhole n{} until it needs a snapshot",
                    member + 1
                ));
                self.cluster.isolate(member, Link::Blackhole);
                self.sleep_watching(hold);
                self.cluster.heal();
                self.note("heal".to_string());
                self.sleep_until_crash(member, hold);
            }
        }
        if let Some(setting) = self.armed[member].take() {
            self.note(format!(
                "n{} did not reach {setting}; restart it without",
                member + 1
            ));
            self.failpoints.push(FailpointResult {
                member,
                setting,
                outcome: FailpointOutcome::NotReached,
            });
            self.cluster.restart(member);
        }
    }
}

/// Key of the restart probe's writes (outside the traffic's prefix).
pub const PROBE_KEY: &str = "probe/restart";
const PROBE_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1000);
const PROBE_PAUSE: Duration = Duration::from_millis(20);

/// Puts [`PROBE_KEY`] through a fresh client (no reconnection backoff) until one put is
/// acknowledged; when it was, or `None` after `within`.
async fn probe_first_write(urls: Vec<String>, clock: Clock, within: Duration) -> Option<Time> {
    let deadline = Instant::now() + within;
    let mut attempt = 0u64;
    while Instant::now() < deadline {
        attempt += 1;
        if let Ok(mut client) = connect(&urls).await {
            let put = client.put(PROBE_KEY, attempt.to_string(), None);
            if let Ok(Ok(_)) = tokio::time::timeout(PROBE_ATTEMPT_TIMEOUT, put).await {
                return Some(clock.now());
            }
        }
        tokio::time::sleep(PROBE_PAUSE).await;
    }
    None
}
