//! The member list: what MemberList returns, kept in step with applied changes.

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

    /// A list as restored from a snapshot.
    pub fn from_members(mut members: Vec<Member>) -> Self {
        members.sort_by_key(|member| member.id);
        members.dedup_by_key(|member| member.id);
        MemberList { members }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn get(&self, id: u64) -> Option<&Member> {
        self.members.iter().find(|member| member.id == id)
    }

    pub fn is_learner(&self, id: u64) -> bool {
        self.get(id).is_some_and(|member| member.is_learner)
    }

    pub fn learner_count(&self) -> usize {
        self.members
            .iter()
            .filter(|member| member.is_learner)
            .count()
    }

    pub fn voters(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|member| !member.is_learner)
    }

    /// The member (other than `except`) already using one of `peer_urls`.
    pub fn peer_url_owner(&self, peer_urls: &[String], except: u64) -> Option<u64> {
        self.members
            .iter()
            .find(|member| {
                member.id != except && member.peer_ur_ls.iter().any(|url| peer_urls.contains(url))
            })
            .map(|member| member.id)
    }

    /// Adds `member`, or updates a known one (keeping its published name and client urls when
    /// `member` has none).
    pub fn apply_add(&mut self, member: Member) {
        match self.members.iter_mut().find(|known| known.id == member.id) {
            Some(known) => {
                known.peer_ur_ls = member.peer_ur_ls;
                known.is_learner = member.is_learner;
                if !member.name.is_empty() {
                    known.name = member.name;
                }
                if !member.client_ur_ls.is_empty() {
                    known.client_ur_ls = member.client_ur_ls;
                }
            }
            None => {
                self.members.push(member);
                self.members.sort_by_key(|member| member.id);
            }
        }
    }

    /// Removes a member; false when it was not known.
    pub fn apply_remove(&mut self, id: u64) -> bool {
        let before = self.members.len();
        self.members.retain(|member| member.id != id);
        self.members.len() != before
    }

    /// Sets a member's peer urls; false when it was not known.
    pub fn apply_update(&mut self, id: u64, peer_urls: &[String]) -> bool {
        match self.members.iter_mut().find(|member| member.id == id) {
            Some(member) => {
                member.peer_ur_ls = peer_urls.to_vec();
                true
            }
            None => false,
        }
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
