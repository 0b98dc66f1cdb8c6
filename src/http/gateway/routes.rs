//! The gateway's routing table: each HTTP path etcd's `rpc.proto`, `v3lock.proto` and
//! `v3election.proto` bind with `google.api.http` (all `post`, body `*`), and the gRPC method
//! it calls. The older `/v3/kv/lease/...` bindings of the lease service are kept, as etcd
//! keeps them (`additional_bindings`). `/v3/maintenance/hashkv` and `/v3/auth/status` are
//! etcd 3.5's; the auth paths reach a method Capstan does not implement yet (see
//! [`super::call`]).

use capstan_proto::method;

/// `(HTTP path, gRPC method)`, in the order of the services in etcd's protos.
pub const ROUTES: &[(&str, &str)] = &[
    ("/v3/kv/range", method::KV_RANGE),
    ("/v3/kv/put", method::KV_PUT),
    ("/v3/kv/deleterange", method::KV_DELETE_RANGE),
    ("/v3/kv/txn", method::KV_TXN),
    ("/v3/kv/compaction", method::KV_COMPACT),
    ("/v3/watch", method::WATCH_WATCH),
    ("/v3/lease/grant", method::LEASE_LEASE_GRANT),
    ("/v3/lease/revoke", method::LEASE_LEASE_REVOKE),
    ("/v3/kv/lease/revoke", method::LEASE_LEASE_REVOKE),
    ("/v3/lease/keepalive", method::LEASE_LEASE_KEEP_ALIVE),
    ("/v3/lease/timetolive", method::LEASE_LEASE_TIME_TO_LIVE),
    ("/v3/kv/lease/timetolive", method::LEASE_LEASE_TIME_TO_LIVE),
    ("/v3/lease/leases", method::LEASE_LEASE_LEASES),
    ("/v3/kv/lease/leases", method::LEASE_LEASE_LEASES),
    ("/v3/cluster/member/add", method::CLUSTER_MEMBER_ADD),
    ("/v3/cluster/member/remove", method::CLUSTER_MEMBER_REMOVE),
    ("/v3/cluster/member/update", method::CLUSTER_MEMBER_UPDATE),
    ("/v3/cluster/member/list", method::CLUSTER_MEMBER_LIST),
    ("/v3/cluster/member/promote", method::CLUSTER_MEMBER_PROMOTE),
    ("/v3/maintenance/alarm", method::MAINTENANCE_ALARM),
    ("/v3/maintenance/status", method::MAINTENANCE_STATUS),
    ("/v3/maintenance/defragment", method::MAINTENANCE_DEFRAGMENT),
    ("/v3/maintenance/hash", method::MAINTENANCE_HASH),
    ("/v3/maintenance/hashkv", method::MAINTENANCE_HASH_KV),
    ("/v3/maintenance/snapshot", method::MAINTENANCE_SNAPSHOT),
    (
        "/v3/maintenance/transfer-leadership",
        method::MAINTENANCE_MOVE_LEADER,
    ),
    ("/v3/maintenance/downgrade", method::MAINTENANCE_DOWNGRADE),
    ("/v3/auth/enable", method::AUTH_AUTH_ENABLE),
    ("/v3/auth/disable", method::AUTH_AUTH_DISABLE),
    ("/v3/auth/status", method::AUTH_AUTH_STATUS),
    ("/v3/auth/authenticate", method::AUTH_AUTHENTICATE),
    ("/v3/auth/user/add", method::AUTH_USER_ADD),
    ("/v3/auth/user/get", method::AUTH_USER_GET),
    ("/v3/auth/user/list", method::AUTH_USER_LIST),
    ("/v3/auth/user/delete", method::AUTH_USER_DELETE),
    ("/v3/auth/user/changepw", method::AUTH_USER_CHANGE_PASSWORD),
    ("/v3/auth/user/grant", method::AUTH_USER_GRANT_ROLE),
    ("/v3/auth/user/revoke", method::AUTH_USER_REVOKE_ROLE),
    ("/v3/auth/role/add", method::AUTH_ROLE_ADD),
    ("/v3/auth/role/get", method::AUTH_ROLE_GET),
    ("/v3/auth/role/list", method::AUTH_ROLE_LIST),
    ("/v3/auth/role/delete", method::AUTH_ROLE_DELETE),
    ("/v3/auth/role/grant", method::AUTH_ROLE_GRANT_PERMISSION),
    ("/v3/auth/role/revoke", method::AUTH_ROLE_REVOKE_PERMISSION),
    ("/v3/lock/lock", method::LOCK_LOCK),
    ("/v3/lock/unlock", method::LOCK_UNLOCK),
    ("/v3/election/campaign", method::ELECTION_CAMPAIGN),
    ("/v3/election/proclaim", method::ELECTION_PROCLAIM),
    ("/v3/election/leader", method::ELECTION_LEADER),
    ("/v3/election/observe", method::ELECTION_OBSERVE),
    ("/v3/election/resign", method::ELECTION_RESIGN),
];

/// The gRPC method bound to `path` (exact match, as grpc-gateway's patterns are literal here).
pub fn method_for(path: &str) -> Option<&'static str> {
    ROUTES
        .iter()
        .find(|(known, _)| *known == path)
        .map(|(_, method)| *method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_unique_and_every_method_exists() {
        for (index, (path, method)) in ROUTES.iter().enumerate() {
            assert!(path.starts_with("/v3/"), "{path}");
            assert!(
                ROUTES[index + 1..].iter().all(|(other, _)| other != path),
                "{path} twice"
            );
            assert!(capstan_proto::method::ALL.contains(method), "{method}");
        }
        assert_eq!(method_for("/v3/kv/range"), Some(method::KV_RANGE));
        assert_eq!(method_for("/v3/kv/range/"), None);
        assert_eq!(method_for("/v3/kv"), None);
    }
}
