//! Member and cluster ids, derived as etcd derives them (`membership.computeMemberID` and
//! `RaftCluster.genID`): SHA-1, first 8 bytes read big-endian.

/// SHA-1 of the sorted peer urls joined with nothing, then the cluster token.
pub fn member_id_of(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut sorted: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut hasher = sha1_smol::Sha1::new();
    hasher.update(sorted.concat().as_bytes());
    hasher.update(cluster_token.as_bytes());
    first_8_bytes_big_endian(&hasher.digest().bytes())
}

/// SHA-1 of the sorted member ids, each as 8 big-endian bytes.
pub fn cluster_id_of(member_ids: &[u64]) -> u64 {
    let mut sorted = member_ids.to_vec();
    sorted.sort_unstable();
    let mut hasher = sha1_smol::Sha1::new();
    for id in sorted {
        hasher.update(&id.to_be_bytes());
    }
    first_8_bytes_big_endian(&hasher.digest().bytes())
}

fn first_8_bytes_big_endian(digest: &[u8; 20]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_order_independent() {
        let a = member_id_of(&["http://a:2380".into(), "http://b:2380".into()], "t");
        let b = member_id_of(&["http://b:2380".into(), "http://a:2380".into()], "t");
        assert_eq!(a, b);
        assert_ne!(a, member_id_of(&["http://a:2380".into()], "t"));
        assert_eq!(cluster_id_of(&[1, 2, 3]), cluster_id_of(&[3, 1, 2]));
    }
}
