//! `/version` (client port), as etcd 3.6 answers it: GET only, `application/json`,
//! `{"etcdserver":"3.6.0","etcdcluster":"3.6.0","storage":"3.6.0"}`.
//!
//! etcd reports its binary's version, the cluster version (the lowest of its members',
//! major.minor.0, once decided) and the storage version. Capstan has one API version for all
//! three, [`ETCD_API_VERSION`]; the cluster version is its major.minor with patch 0, as etcd
//! writes it. (etcd's metrics listener does not serve this path.)

use super::health::json_string;
use super::request::Request;
use super::response::Response;
use crate::config::ETCD_API_VERSION;

/// `major.minor.0` of a `major.minor.patch` version.
pub fn cluster_version(version: &str) -> String {
    let mut parts = version.splitn(3, '.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}.0"),
        _ => version.to_string(),
    }
}

/// The JSON body of `/version`.
pub fn version_json() -> String {
    let cluster = cluster_version(ETCD_API_VERSION);
    format!(
        "{{\"etcdserver\":{},\"etcdcluster\":{},\"storage\":{}}}",
        json_string(ETCD_API_VERSION),
        json_string(&cluster),
        json_string(&cluster)
    )
}

pub fn respond_version(request: &Request) -> Response {
    if request.method != "GET" {
        return Response::get_only();
    }
    Response::new(200)
        .with_header("Content-Type", "application/json")
        .with_body(version_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_body_is_etcds() {
        assert_eq!(cluster_version("3.6.14"), "3.6.0");
        assert_eq!(
            version_json(),
            r#"{"etcdserver":"3.6.0","etcdcluster":"3.6.0","storage":"3.6.0"}"#
        );
    }
}
