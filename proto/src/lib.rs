//! Protobuf messages for Capstan: the etcd v3 client API (wire-compatible with
//! etcd 3.6/3.7), the gRPC health protocol, and Capstan's internal raft payload.
//! Rust types are generated at build time by prost; gRPC services are not
//! generated, only their method paths are listed in [`method`].

/// etcd MVCC records: `KeyValue`, `Event`.
#[allow(clippy::all, missing_docs)]
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// etcd auth records: `User`, `Role`, `Permission`.
#[allow(clippy::all, missing_docs)]
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// etcd v3 client API messages (KV, Watch, Lease, Cluster, Maintenance, Auth).
#[allow(clippy::all, missing_docs)]
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// etcd lock service messages.
#[allow(clippy::all, missing_docs)]
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
}

/// etcd election service messages.
#[allow(clippy::all, missing_docs)]
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}

/// Standard gRPC health checking protocol (`grpc.health.v1`).
#[allow(clippy::all, missing_docs)]
pub mod grpc_health_v1 {
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

/// Capstan-internal messages (raft entry payload).
#[allow(clippy::all, missing_docs)]
pub mod capstanpb {
    include!(concat!(env!("OUT_DIR"), "/capstanpb.rs"));
}

/// Full gRPC method paths (`/package.Service/Method`) for every RPC we serve.
pub mod method {
    // etcdserverpb.KV
    pub const KV_RANGE: &str = "/etcdserverpb.KV/Range";
    pub const KV_PUT: &str = "/etcdserverpb.KV/Put";
    pub const KV_DELETE_RANGE: &str = "/etcdserverpb.KV/DeleteRange";
    pub const KV_TXN: &str = "/etcdserverpb.KV/Txn";
    pub const KV_COMPACT: &str = "/etcdserverpb.KV/Compact";
    pub const KV_RANGE_STREAM: &str = "/etcdserverpb.KV/RangeStream";

    // etcdserverpb.Watch
    pub const WATCH_WATCH: &str = "/etcdserverpb.Watch/Watch";

    // etcdserverpb.Lease
    pub const LEASE_LEASE_GRANT: &str = "/etcdserverpb.Lease/LeaseGrant";
    pub const LEASE_LEASE_REVOKE: &str = "/etcdserverpb.Lease/LeaseRevoke";
    pub const LEASE_LEASE_KEEP_ALIVE: &str = "/etcdserverpb.Lease/LeaseKeepAlive";
    pub const LEASE_LEASE_TIME_TO_LIVE: &str = "/etcdserverpb.Lease/LeaseTimeToLive";
    pub const LEASE_LEASE_LEASES: &str = "/etcdserverpb.Lease/LeaseLeases";

    // etcdserverpb.Cluster
    pub const CLUSTER_MEMBER_ADD: &str = "/etcdserverpb.Cluster/MemberAdd";
    pub const CLUSTER_MEMBER_REMOVE: &str = "/etcdserverpb.Cluster/MemberRemove";
    pub const CLUSTER_MEMBER_UPDATE: &str = "/etcdserverpb.Cluster/MemberUpdate";
    pub const CLUSTER_MEMBER_LIST: &str = "/etcdserverpb.Cluster/MemberList";
    pub const CLUSTER_MEMBER_PROMOTE: &str = "/etcdserverpb.Cluster/MemberPromote";

    // etcdserverpb.Maintenance
    pub const MAINTENANCE_ALARM: &str = "/etcdserverpb.Maintenance/Alarm";
    pub const MAINTENANCE_STATUS: &str = "/etcdserverpb.Maintenance/Status";
    pub const MAINTENANCE_DEFRAGMENT: &str = "/etcdserverpb.Maintenance/Defragment";
    pub const MAINTENANCE_HASH: &str = "/etcdserverpb.Maintenance/Hash";
    pub const MAINTENANCE_HASH_KV: &str = "/etcdserverpb.Maintenance/HashKV";
    pub const MAINTENANCE_SNAPSHOT: &str = "/etcdserverpb.Maintenance/Snapshot";
    pub const MAINTENANCE_MOVE_LEADER: &str = "/etcdserverpb.Maintenance/MoveLeader";
    pub const MAINTENANCE_DOWNGRADE: &str = "/etcdserverpb.Maintenance/Downgrade";

    // etcdserverpb.Auth
    pub const AUTH_AUTH_ENABLE: &str = "/etcdserverpb.Auth/AuthEnable";
    pub const AUTH_AUTH_DISABLE: &str = "/etcdserverpb.Auth/AuthDisable";
    pub const AUTH_AUTH_STATUS: &str = "/etcdserverpb.Auth/AuthStatus";
    pub const AUTH_AUTHENTICATE: &str = "/etcdserverpb.Auth/Authenticate";
    pub const AUTH_USER_ADD: &str = "/etcdserverpb.Auth/UserAdd";
    pub const AUTH_USER_GET: &str = "/etcdserverpb.Auth/UserGet";
    pub const AUTH_USER_LIST: &str = "/etcdserverpb.Auth/UserList";
    pub const AUTH_USER_DELETE: &str = "/etcdserverpb.Auth/UserDelete";
    pub const AUTH_USER_CHANGE_PASSWORD: &str = "/etcdserverpb.Auth/UserChangePassword";
    pub const AUTH_USER_GRANT_ROLE: &str = "/etcdserverpb.Auth/UserGrantRole";
    pub const AUTH_USER_REVOKE_ROLE: &str = "/etcdserverpb.Auth/UserRevokeRole";
    pub const AUTH_ROLE_ADD: &str = "/etcdserverpb.Auth/RoleAdd";
    pub const AUTH_ROLE_GET: &str = "/etcdserverpb.Auth/RoleGet";
    pub const AUTH_ROLE_LIST: &str = "/etcdserverpb.Auth/RoleList";
    pub const AUTH_ROLE_DELETE: &str = "/etcdserverpb.Auth/RoleDelete";
    pub const AUTH_ROLE_GRANT_PERMISSION: &str = "/etcdserverpb.Auth/RoleGrantPermission";
    pub const AUTH_ROLE_REVOKE_PERMISSION: &str = "/etcdserverpb.Auth/RoleRevokePermission";

    // v3lockpb.Lock
    pub const LOCK_LOCK: &str = "/v3lockpb.Lock/Lock";
    pub const LOCK_UNLOCK: &str = "/v3lockpb.Lock/Unlock";

    // v3electionpb.Election
    pub const ELECTION_CAMPAIGN: &str = "/v3electionpb.Election/Campaign";
    pub const ELECTION_PROCLAIM: &str = "/v3electionpb.Election/Proclaim";
    pub const ELECTION_LEADER: &str = "/v3electionpb.Election/Leader";
    pub const ELECTION_OBSERVE: &str = "/v3electionpb.Election/Observe";
    pub const ELECTION_RESIGN: &str = "/v3electionpb.Election/Resign";

    // grpc.health.v1.Health
    pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
    pub const HEALTH_WATCH: &str = "/grpc.health.v1.Health/Watch";

    /// Every method path above, for routing tables and tests.
    pub const ALL: &[&str] = &[
        KV_RANGE,
        KV_PUT,
        KV_DELETE_RANGE,
        KV_TXN,
        KV_COMPACT,
        KV_RANGE_STREAM,
        WATCH_WATCH,
        LEASE_LEASE_GRANT,
        LEASE_LEASE_REVOKE,
        LEASE_LEASE_KEEP_ALIVE,
        LEASE_LEASE_TIME_TO_LIVE,
        LEASE_LEASE_LEASES,
        CLUSTER_MEMBER_ADD,
        CLUSTER_MEMBER_REMOVE,
        CLUSTER_MEMBER_UPDATE,
        CLUSTER_MEMBER_LIST,
        CLUSTER_MEMBER_PROMOTE,
        MAINTENANCE_ALARM,
        MAINTENANCE_STATUS,
        MAINTENANCE_DEFRAGMENT,
        MAINTENANCE_HASH,
        MAINTENANCE_HASH_KV,
        MAINTENANCE_SNAPSHOT,
        MAINTENANCE_MOVE_LEADER,
        MAINTENANCE_DOWNGRADE,
        AUTH_AUTH_ENABLE,
        AUTH_AUTH_DISABLE,
        AUTH_AUTH_STATUS,
        AUTH_AUTHENTICATE,
        AUTH_USER_ADD,
        AUTH_USER_GET,
        AUTH_USER_LIST,
        AUTH_USER_DELETE,
        AUTH_USER_CHANGE_PASSWORD,
        AUTH_USER_GRANT_ROLE,
        AUTH_USER_REVOKE_ROLE,
        AUTH_ROLE_ADD,
        AUTH_ROLE_GET,
        AUTH_ROLE_LIST,
        AUTH_ROLE_DELETE,
        AUTH_ROLE_GRANT_PERMISSION,
        AUTH_ROLE_REVOKE_PERMISSION,
        LOCK_LOCK,
        LOCK_UNLOCK,
        ELECTION_CAMPAIGN,
        ELECTION_PROCLAIM,
        ELECTION_LEADER,
        ELECTION_OBSERVE,
        ELECTION_RESIGN,
        HEALTH_CHECK,
        HEALTH_WATCH,
    ];
}
