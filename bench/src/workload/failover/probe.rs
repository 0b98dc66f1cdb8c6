//! Is the cluster healthy, and who leads it?
//!
//! A member is healthy when, within [`HEALTH_CALL_TIMEOUT`], it can be dialed, answers
//! `Maintenance/Status` with a leader, and answers a linearizable `KV/Range` (what
//! `etcdctl endpoint health` checks: the read needs a quorum). The cluster is healthy when
//! every member is and all name the same leader, which is one of them (`Status.leader ==
//! header.member_id` of the leader's own answer).

use crate::error::BenchError;
use crate::grpc::{CallError, Channel};
use crate::limits::{HEALTH_CALL_TIMEOUT, HEALTH_POLL_INTERVAL};
use bytes::Bytes;
use capstan_proto::etcdserverpb::{RangeRequest, RangeResponse, StatusRequest, StatusResponse};
use capstan_proto::method::{KV_RANGE, MAINTENANCE_STATUS};
use std::time::{Duration, Instant};

/// What one healthy member said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStatus {
    pub member_id: u64,
    pub leader_id: u64,
}

/// A healthy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthy {
    /// The leader's client endpoint.
    pub leader_endpoint: String,
    pub leader_id: u64,
}

/// Asks one member.
pub async fn probe(endpoint: &str) -> Result<MemberStatus, CallError> {
    let ask = async {
        let channel = Channel::connect(endpoint, HEALTH_CALL_TIMEOUT).await?;
        let status: StatusResponse = channel.unary(MAINTENANCE_STATUS, &StatusRequest {}).await?;
        let member_id = status.header.map(|header| header.member_id).unwrap_or(0);
        let read = RangeRequest {
            key: Bytes::from_static(b"health"),
            ..Default::default()
        };
        channel.unary::<_, RangeResponse>(KV_RANGE, &read).await?;
        Ok::<_, CallError>(MemberStatus {
            member_id,
            leader_id: status.leader,
        })
    };
    tokio::time::timeout(HEALTH_CALL_TIMEOUT, ask)
        .await
        .map_err(|_| CallError::Timeout(HEALTH_CALL_TIMEOUT))?
}

/// Decides from every member's answer; `Err` says what is wrong.
pub fn judge(answers: &[(String, Result<MemberStatus, CallError>)]) -> Result<Healthy, String> {
    let mut leader_id = None;
    for (endpoint, answer) in answers {
        let status = answer
            .as_ref()
            .map_err(|error| format!("{endpoint}: {error}"))?;
        if status.leader_id == 0 {
            return Err(format!("{endpoint} has no leader"));
        }
        match leader_id {
            None => leader_id = Some(status.leader_id),
            Some(id) if id != status.leader_id => {
                return Err(format!(
                    "members disagree on the leader ({id:x} and {:x})",
                    status.leader_id
                ))
            }
            Some(_) => {}
        }
    }
    let leader_id = leader_id.ok_or_else(|| "no endpoints".to_string())?;
    let leader = answers
        .iter()
        .find(|(_, answer)| matches!(answer, Ok(status) if status.member_id == leader_id));
    match leader {
        Some((endpoint, _)) => Ok(Healthy {
            leader_endpoint: endpoint.clone(),
            leader_id,
        }),
        None => Err(format!(
            "the leader {leader_id:x} is not among the endpoints"
        )),
    }
}

/// Asks every member until the cluster is healthy, for at most `timeout`.
pub async fn wait_healthy(endpoints: &[String], timeout: Duration) -> Result<Healthy, BenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut answers = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            answers.push((endpoint.clone(), probe(endpoint).await));
        }
        let problem = match judge(&answers) {
            Ok(healthy) => return Ok(healthy),
            Err(problem) => problem,
        };
        if Instant::now() >= deadline {
            return Err(BenchError::Usage(format!(
                "the cluster was not healthy within {timeout:?}: {problem}"
            )));
        }
        tokio::time::sleep(HEALTH_POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(
        endpoint: &str,
        member_id: u64,
        leader_id: u64,
    ) -> (String, Result<MemberStatus, CallError>) {
        (
            endpoint.to_string(),
            Ok(MemberStatus {
                member_id,
                leader_id,
            }),
        )
    }

    #[test]
    fn the_leader_is_the_member_named_by_all() {
        let answers = vec![
            answer("a:1", 10, 20),
            answer("b:2", 20, 20),
            answer("c:3", 30, 20),
        ];
        let healthy = judge(&answers).expect("healthy");
        assert_eq!(healthy.leader_endpoint, "b:2");
        assert_eq!(healthy.leader_id, 20);
    }

    #[test]
    fn unhealthy_clusters_say_why() {
        let no_leader = vec![answer("a:1", 10, 0), answer("b:2", 20, 20)];
        assert!(judge(&no_leader).unwrap_err().contains("no leader"));
        let split = vec![answer("a:1", 10, 10), answer("b:2", 20, 20)];
        assert!(judge(&split).unwrap_err().contains("disagree"));
        let elsewhere = vec![answer("a:1", 10, 40), answer("b:2", 20, 40)];
        assert!(judge(&elsewhere).unwrap_err().contains("not among"));
        let down = vec![
            answer("a:1", 10, 10),
            (
                "b:2".to_string(),
                Err(CallError::Transport("refused".to_string())),
            ),
        ];
        assert!(judge(&down).unwrap_err().starts_with("b:2"));
    }
}
