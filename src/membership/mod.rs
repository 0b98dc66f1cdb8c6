//! Cluster membership as clients see it (Cluster.MemberList).
//!
//! The member set starts as `--initial-cluster` (identical on every member, so every member
//! derives the same ids). Client urls are not in that flag: each member publishes its
//! `--advertise-client-urls` through raft once it serves, as etcd does, and every member applies
//! the publication. The owner shard publishes the list as an immutable snapshot for every shard.
//! Adding and removing members (conf changes) is not implemented yet.

use capstan_proto::capstanpb::MemberPublish;
use capstan_proto::etcdserverpb::Member;

/// The members, ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberList {
    members: Vec<Member>,
}

impl MemberList {
    /// The `--initial-cluster` members: (id, name, peer urls).
    pub fn from_initial_cluster(
        members: impl IntoIterator<Item = (u64, String, Vec<String>)>,
    ) -> Self {
        let mut members: Vec<Member> = members
            .into_iter()
            .map(|(id, name, peer_urls)| Member {
                id,
                name,
                peer_ur_ls: peer_urls,
                client_ur_ls: Vec::new(),
                is_learner: false,
            })
            .collect();
        members.sort_by_key(|member| member.id);
        MemberList { members }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Whether applying `publish` would change nothing (so a member need not propose it).
    pub fn is_published(&self, publish: &MemberPublish) -> bool {
        self.members.iter().any(|member| {
            member.id == publish.member_id
                && member.name == publish.name
                && member.client_ur_ls == publish.client_urls
        })
    }

    /// Applies a member's publication; a publication from an unknown member is ignored
    /// (returns false).
    pub fn apply_publish(&mut self, publish: &MemberPublish) -> bool {
        match self
            .members
            .iter_mut()
            .find(|member| member.id == publish.member_id)
        {
            Some(member) => {
                member.name = publish.name.clone();
                member.client_ur_ls = publish.client_urls.clone();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publication_fills_client_urls_of_known_members_only() {
        let mut list = MemberList::from_initial_cluster([
            (2, "b".to_string(), vec!["http://b:2380".to_string()]),
            (1, "a".to_string(), vec!["http://a:2380".to_string()]),
        ]);
        assert_eq!(list.members()[0].id, 1);
        let publish = MemberPublish {
            member_id: 2,
            name: "b".to_string(),
            client_urls: vec!["http://b:2379".to_string()],
        };
        assert!(!list.is_published(&publish));
        assert!(list.apply_publish(&publish));
        assert!(list.is_published(&publish));
        assert_eq!(list.members()[1].client_ur_ls, ["http://b:2379"]);
        assert!(!list.apply_publish(&MemberPublish {
            member_id: 9,
            ..publish
        }));
    }
}
