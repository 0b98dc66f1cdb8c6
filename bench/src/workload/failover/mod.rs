//! `failover`: time from killing the leader to the first write acknowledged after it.
//!
//! Each round: wait until the cluster is healthy ([`probe`]: every member answers Status and a
//! linearizable read, all name the same leader); read the leader's pid from its `--member`
//! pid file; write to the other members at `--put-rate` ([`writer`]); after
//! `--puts-before-kill` successful puts, SIGKILL the leader; the round's figure is the time
//! from the kill to the acknowledgement of the first put sent after it. Then
//! `--restart-command` brings the member back (the bench only waits for health; starting
//! processes is the cluster script's job, e.g. `bench/scripts/cluster3.sh start`).
//!
//! Series: `failover` (one value per round; a round without a successful put within
//! `--round-timeout` is an error) and `put` (every put of every round, from its intended send
//! time: the stall as clients see it). Not a `compare` workload: each cluster needs its own
//! pid files and restart command.

pub mod members;
pub mod probe;
pub mod writer;

use super::{mode_text, series, RunContext, RunResult};
use crate::cli::FailoverArgs;
use crate::error::BenchError;
use crate::grpc::{CallError, Channel};
use crate::metrics::LatencyRecorder;
use members::{is_alive, kill9, parse_members, read_pid, Member};
use probe::wait_healthy;
use std::process::{Command, Stdio};
use std::time::Instant;
use writer::{run_round, RoundPlan};

/// Members a failover needs: with fewer, the survivors cannot form a quorum.
const MEMBERS_MIN: usize = 3;
/// Lines of a failed restart command's output quoted in the error.
const RESTART_OUTPUT_LINES_MAX: usize = 20;

fn check(args: &FailoverArgs, endpoints: usize) -> Result<(), BenchError> {
    if endpoints < MEMBERS_MIN {
        return Err(BenchError::Usage(format!(
            "failover needs the --endpoints of at least {MEMBERS_MIN} members"
        )));
    }
    if args.rounds == 0 {
        return Err(BenchError::Usage("--rounds must be at least 1".to_string()));
    }
    if args.rounds > 1 && args.restart_command.is_none() {
        return Err(BenchError::Usage(
            "--rounds above 1 needs --restart-command to bring the killed member back".to_string(),
        ));
    }
    if !args.put_rate.is_finite() || args.put_rate <= 0.0 {
        return Err(BenchError::Usage(
            "--put-rate must be a positive number".to_string(),
        ));
    }
    if args.puts_before_kill == 0 {
        return Err(BenchError::Usage(
            "--puts-before-kill must be at least 1".to_string(),
        ));
    }
    Ok(())
}

pub async fn run(args: &FailoverArgs, context: &RunContext) -> Result<RunResult, BenchError> {
    let endpoints: Vec<String> = context
        .connect
        .endpoints
        .iter()
        .map(|endpoint| endpoint.authority.clone())
        .collect();
    check(args, endpoints.len())?;
    let members = parse_members(&args.members, &context.connect.endpoints)?;
    let plan = RoundPlan {
        put_rate: args.put_rate,
        puts_before_kill: args.puts_before_kill,
        warm_timeout: args.healthy_timeout,
        round_timeout: args.round_timeout,
        request_timeout: context.request_timeout,
    };
    let start = Instant::now();
    let mut failover = LatencyRecorder::new();
    let mut puts = LatencyRecorder::new();
    let mut notes = vec![format!(
        "puts at {} /s to the members that survive, each on its own stream; failover = \
         kill (SIGKILL of the leader) -> acknowledgement of the first put sent after it",
        args.put_rate
    )];
    for round in 1..=args.rounds {
        let healthy = wait_healthy(&endpoints, args.healthy_timeout).await?;
        let leader = members
            .iter()
            .find(|member| member.endpoint == healthy.leader_endpoint)
            .ok_or_else(|| BenchError::Usage("leader without --member".to_string()))?;
        let pid = read_pid(&leader.pid_file)?;
        if !is_alive(pid) {
            return Err(BenchError::Usage(format!(
                "the leader {} has pid {pid} in {}, but no such process runs",
                leader.endpoint,
                leader.pid_file.display()
            )));
        }
        let survivors = connect_survivors(&endpoints, &leader.endpoint, context).await?;
        let outcome = run_round(survivors, &plan, || {
            let at = Instant::now();
            kill9(pid)?;
            Ok(at)
        })
        .await?;
        puts.merge(&outcome.puts);
        let result_text = match outcome.kill_to_ack {
            Some(elapsed) => {
                failover.record(elapsed);
                format!(
                    "first put sent after the kill acknowledged after {:.1} ms",
                    elapsed.as_secs_f64() * 1000.0
                )
            }
            None => {
                failover.record_error(&CallError::Timeout(args.round_timeout));
                format!("no put succeeded within {:?}", args.round_timeout)
            }
        };
        notes.push(format!(
            "round {round}: killed leader {} (member {:x}, pid {pid}); {result_text}; {} puts \
             failed after the kill",
            leader.endpoint, healthy.leader_id, outcome.failed_after_kill
        ));
        if let Some(command) = &args.restart_command {
            restart(command, leader).await?;
        }
    }
    if args.restart_command.is_some() {
        let back = Instant::now();
        wait_healthy(&endpoints, args.healthy_timeout).await?;
        notes.push(format!(
            "after the last restart the cluster was healthy again in {:.1} s",
            back.elapsed().as_secs_f64()
        ));
    } else {
        notes.push("no --restart-command: the killed member stays down".to_string());
    }
    let elapsed = start.elapsed();
    Ok(RunResult {
        benchmark: "failover".to_string(),
        mode: mode_text(Some(args.put_rate)),
        series: vec![
            series("failover", failover, elapsed, start),
            series("put", puts, elapsed, start),
        ],
        notes,
        warmup: 0,
        send_lag: LatencyRecorder::new(),
    })
}

async fn connect_survivors(
    endpoints: &[String],
    leader: &str,
    context: &RunContext,
) -> Result<Vec<Channel>, BenchError> {
    let mut channels = Vec::new();
    for endpoint in endpoints.iter().filter(|endpoint| *endpoint != leader) {
        let channel = Channel::connect(endpoint, context.connect.dial_timeout)
            .await
            .map_err(|error| BenchError::Connect {
                endpoint: endpoint.clone(),
                reason: error.to_string(),
            })?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Runs the restart command (`sh -c`), its output kept out of our report on stdout.
async fn restart(command: &str, killed: &Member) -> Result<(), BenchError> {
    let mut process = Command::new("sh");
    process
        .arg("-c")
        .arg(command)
        .env("CAPSTAN_BENCH_KILLED_ENDPOINT", &killed.endpoint)
        .env("CAPSTAN_BENCH_KILLED_PID_FILE", &killed.pid_file)
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || process.output())
        .await
        .map_err(|error| BenchError::Usage(format!("restart command: {error}")))?
        .map_err(|error| BenchError::Usage(format!("cannot run the restart command: {error}")))?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(RESTART_OUTPUT_LINES_MAX)..].join("\n");
    Err(BenchError::Usage(format!(
        "the restart command failed ({}): {command}\n{tail}",
        output.status
    )))
}
