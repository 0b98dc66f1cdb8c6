//! etcd's rules for membership changes, checked by the leader before it proposes one.
//!
//! Pure functions of the member list, the leader's view of replication, and the flags, so the
//! rules are tested without a cluster.

use super::{MemberList, MembershipError};
use crate::config::member_id_of;
use capstan_proto::capstanpb::membership_request::Request;
use capstan_proto::etcdserverpb::Member;
use std::collections::{HashMap, HashSet};

/// etcd's `readyPercentThreshold`: a learner is promoted only once its log matches at least
/// this share of the leader's.
pub const LEARNER_READY_SHARE: f64 = 0.9;

/// The flags that shape the rules.
#[derive(Clone, Debug)]
pub struct ChangeRules {
    pub cluster_token: String,
    /// `--max-learners`.
    pub max_learners: usize,
    /// `--strict-reconfig-check`: refuse changes that would leave too few started members.
    pub strict_reconfig_check: bool,
}

/// What the leader knows about replication, from raft's progress tracker.
#[derive(Clone, Debug, Default)]
pub struct Replication {
    pub leader_id: u64,
    /// Highest log index known to be replicated on each member.
    pub matched: HashMap<u64, u64>,
    /// Members heard from recently (the leader counts itself).
    pub active: HashSet<u64>,
}

/// A validated change, ready to propose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    Add(Member),
    Remove(u64),
    Update { id: u64, peer_urls: Vec<String> },
    Promote(Member),
}

/// etcd's `types.NewURLs`: `http(s)://host:port`, without a path. Syntax only: the host need
/// not resolve on the member that checks it.
fn is_peer_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let host_port = rest.trim_end_matches('/');
    match host_port.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host_port.contains('/') && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

fn check_urls(peer_urls: &[String]) -> Result<(), MembershipError> {
    if peer_urls.is_empty() || !peer_urls.iter().all(|url| is_peer_url(url)) {
        return Err(MembershipError::BadUrls);
    }
    Ok(())
}

/// A member that has published itself serves (etcd's "started").
fn is_started(member: &Member) -> bool {
    !member.name.is_empty()
}

/// etcd's `IsReadyToAddVotingMember`: after adding a voter, the started voters still form a
/// quorum (adding a second member to a one-member cluster is allowed).
fn ready_to_add_voter(list: &MemberList) -> bool {
    let started = list.voters().filter(|member| is_started(member)).count();
    let members_after = list.voters().count() + 1;
    if started == 1 && members_after == 2 {
        return true;
    }
    started > members_after / 2
}

/// etcd's `IsReadyToRemoveVotingMember`: the started voters left form a quorum of those left.
fn ready_to_remove_voter(list: &MemberList, id: u64) -> bool {
    let left: Vec<&Member> = list.voters().filter(|member| member.id != id).collect();
    let started = left.iter().filter(|member| is_started(member)).count();
    started > left.len() / 2
}

/// Validates `request` against etcd's rules; the change to propose, or etcd's refusal.
pub fn plan(
    list: &MemberList,
    rules: &ChangeRules,
    replication: &Replication,
    request: &Request,
) -> Result<Planned, MembershipError> {
    match request {
        Request::Add(add) => {
            check_urls(&add.peer_ur_ls)?;
            if list.peer_url_owner(&add.peer_ur_ls, 0).is_some() {
                return Err(MembershipError::PeerUrlExists);
            }
            let id = member_id_of(&add.peer_ur_ls, &rules.cluster_token);
            if list.get(id).is_some() {
                return Err(MembershipError::IdExists);
            }
            if add.is_learner {
                if list.learner_count() >= rules.max_learners {
                    return Err(MembershipError::TooManyLearners);
                }
            } else if rules.strict_reconfig_check {
                if !ready_to_add_voter(list) {
                    return Err(MembershipError::NotEnoughStarted);
                }
                if list
                    .voters()
                    .any(|member| !replication.active.contains(&member.id))
                {
                    return Err(MembershipError::Unhealthy);
                }
            }
            Ok(Planned::Add(Member {
                id,
                name: String::new(),
                peer_ur_ls: add.peer_ur_ls.clone(),
                client_ur_ls: Vec::new(),
                is_learner: add.is_learner,
            }))
        }
        Request::Remove(remove) => {
            let member = list.get(remove.id).ok_or(MembershipError::NotFound)?;
            if rules.strict_reconfig_check && !member.is_learner {
                if !ready_to_remove_voter(list, remove.id) {
                    return Err(MembershipError::NotEnoughStarted);
                }
                // A member that is down is not part of the active quorum: safe to remove.
                let target_down =
                    remove.id != replication.leader_id && !replication.active.contains(&remove.id);
                let voters = list.voters().count();
                let active = list
                    .voters()
                    .filter(|member| replication.active.contains(&member.id))
                    .count();
                if !target_down && active.saturating_sub(1) < 1 + (voters - 1) / 2 {
                    return Err(MembershipError::Unhealthy);
                }
            }
            Ok(Planned::Remove(remove.id))
        }
        Request::Update(update) => {
            check_urls(&update.peer_ur_ls)?;
            if list.get(update.id).is_none() {
                return Err(MembershipError::NotFound);
            }
            if list.peer_url_owner(&update.peer_ur_ls, update.id).is_some() {
                return Err(MembershipError::PeerUrlExists);
            }
            Ok(Planned::Update {
                id: update.id,
                peer_urls: update.peer_ur_ls.clone(),
            })
        }
        Request::Promote(promote) => {
            let member = list.get(promote.id).ok_or(MembershipError::NotFound)?;
            if !member.is_learner {
                return Err(MembershipError::NotLearner);
            }
            let leader_match = replication
                .matched
                .get(&replication.leader_id)
                .copied()
                .unwrap_or(0);
            let learner_match = replication.matched.get(&promote.id).copied().unwrap_or(0);
            if (learner_match as f64) < (leader_match as f64) * LEARNER_READY_SHARE {
                return Err(MembershipError::LearnerNotReady);
            }
            if rules.strict_reconfig_check && !ready_to_add_voter(list) {
                return Err(MembershipError::NotEnoughStarted);
            }
            Ok(Planned::Promote(Member {
                is_learner: false,
                ..member.clone()
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::etcdserverpb::{
        MemberAddRequest, MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest,
    };

    fn url(host: &str) -> Vec<String> {
        vec![format!("http://{host}:2380")]
    }

    fn three_started() -> MemberList {
        let mut list = MemberList::from_initial_cluster(
            [(1, "a", "a"), (2, "b", "b"), (3, "c", "c")]
                .map(|(id, name, host)| (id, name.to_string(), url(host))),
        );
        for id in [1, 2, 3] {
            list.apply_publish(&capstan_proto::capstanpb::MemberPublish {
                member_id: id,
                name: format!("m{id}"),
                client_urls: vec![],
            });
        }
        list
    }

    fn rules() -> ChangeRules {
        ChangeRules {
            cluster_token: "etcd-cluster".to_string(),
            max_learners: 1,
            strict_reconfig_check: true,
        }
    }

    fn all_active(list: &MemberList, matched: u64) -> Replication {
        Replication {
            leader_id: 1,
            matched: list.members().iter().map(|m| (m.id, matched)).collect(),
            active: list.members().iter().map(|m| m.id).collect(),
        }
    }

    fn add(host: &str, is_learner: bool) -> Request {
        Request::Add(MemberAddRequest {
            peer_ur_ls: url(host),
            is_learner,
        })
    }

    #[test]
    fn add_checks_urls_ids_learner_count_and_health() {
        let list = three_started();
        let healthy = all_active(&list, 10);
        let Ok(Planned::Add(member)) = plan(&list, &rules(), &healthy, &add("d", true)) else {
            panic!("learner add refused");
        };
        assert_eq!(member.id, member_id_of(&url("d"), "etcd-cluster"));
        assert!(member.is_learner);
        let bad = Request::Add(MemberAddRequest {
            peer_ur_ls: vec!["not a url".to_string()],
            is_learner: false,
        });
        assert_eq!(
            plan(&list, &rules(), &healthy, &bad),
            Err(MembershipError::BadUrls)
        );
        for bad_url in [
            "http://a",
            "ftp://a:1",
            "http://:1",
            "http://a:1/path",
            "http://a:x",
        ] {
            assert!(!is_peer_url(bad_url), "{bad_url}");
        }
        assert!(is_peer_url("https://[::1]:2380"));
        assert_eq!(
            plan(&list, &rules(), &healthy, &add("b", false)),
            Err(MembershipError::PeerUrlExists)
        );
        let mut with_learner = list.clone();
        with_learner.apply_add(member);
        assert_eq!(
            plan(&with_learner, &rules(), &healthy, &add("e", true)),
            Err(MembershipError::TooManyLearners)
        );
        let mut one_down = healthy.clone();
        one_down.active.remove(&3);
        assert_eq!(
            plan(&list, &rules(), &one_down, &add("e", false)),
            Err(MembershipError::Unhealthy)
        );
        let lax = ChangeRules {
            strict_reconfig_check: false,
            ..rules()
        };
        assert!(plan(&list, &lax, &one_down, &add("e", false)).is_ok());
    }

    #[test]
    fn promote_needs_a_learner_within_ninety_percent_of_the_leader() {
        let mut list = three_started();
        let learner = Member {
            id: 9,
            name: String::new(),
            peer_ur_ls: url("d"),
            client_ur_ls: vec![],
            is_learner: true,
        };
        list.apply_add(learner);
        let mut replication = all_active(&list, 1000);
        replication.matched.insert(9, 899);
        let promote = |id| Request::Promote(MemberPromoteRequest { id });
        assert_eq!(
            plan(&list, &rules(), &replication, &promote(9)),
            Err(MembershipError::LearnerNotReady)
        );
        replication.matched.insert(9, 900);
        let Ok(Planned::Promote(member)) = plan(&list, &rules(), &replication, &promote(9)) else {
            panic!("promote refused");
        };
        assert!(!member.is_learner);
        assert_eq!(
            plan(&list, &rules(), &replication, &promote(2)),
            Err(MembershipError::NotLearner)
        );
        assert_eq!(
            plan(&list, &rules(), &replication, &promote(77)),
            Err(MembershipError::NotFound)
        );
    }

    #[test]
    fn remove_and_update_follow_etcds_rules() {
        let list = three_started();
        let healthy = all_active(&list, 10);
        let remove = |id| Request::Remove(MemberRemoveRequest { id });
        assert_eq!(
            plan(&list, &rules(), &healthy, &remove(3)),
            Ok(Planned::Remove(3))
        );
        assert_eq!(
            plan(&list, &rules(), &healthy, &remove(8)),
            Err(MembershipError::NotFound)
        );
        // With 3 down, removing 2 would leave the leader alone: refused; removing 3 is fine.
        let mut one_down = healthy.clone();
        one_down.active.remove(&3);
        assert_eq!(
            plan(&list, &rules(), &one_down, &remove(2)),
            Err(MembershipError::Unhealthy)
        );
        assert_eq!(
            plan(&list, &rules(), &one_down, &remove(3)),
            Ok(Planned::Remove(3))
        );
        let update = |id, host: &str| {
            Request::Update(MemberUpdateRequest {
                id,
                peer_ur_ls: url(host),
            })
        };
        assert_eq!(
            plan(&list, &rules(), &healthy, &update(2, "c")),
            Err(MembershipError::PeerUrlExists)
        );
        assert_eq!(
            plan(&list, &rules(), &healthy, &update(2, "b2")),
            Ok(Planned::Update {
                id: 2,
                peer_urls: url("b2")
            })
        );
        assert_eq!(
            plan(&list, &rules(), &healthy, &update(2, "b")),
            Ok(Planned::Update {
                id: 2,
                peer_urls: url("b")
            }),
            "a member may keep its own urls"
        );
    }
}
