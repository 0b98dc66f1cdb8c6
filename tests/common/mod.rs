//! Test harness: real `capstan` (and Debian `etcd` 3.4) processes on 127.0.0.1 ports, real
//! `etcdctl` 3.4. Every process started here is killed and reaped when its handle drops.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
pub const READY_LINE: &str = "ready to serve client requests";

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

pub fn capstan_binary() -> &'static str {
    env!("CARGO_BIN_EXE_capstan")
}

/// Which server program a [`Server`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Capstan,
    /// Debian's etcd 3.4, the reference.
    Etcd,
}

/// A server process with its data directory and log file.
pub struct Server {
    pub flavor: Flavor,
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    extra_args: Vec<String>,
    /// Environment set (`Some`) or removed (`None`) for the process, on top of the test's own.
    env: Vec<(String, Option<String>)>,
    ready_lines_before: Option<usize>,
}

impl Server {
    /// Starts a fresh server in `dir` (data in `dir/data`, log in `dir/server.log`).
    pub fn start(flavor: Flavor, dir: &Path, extra_args: &[&str]) -> Server {
        Server::start_with_env(flavor, dir, extra_args, &[])
    }

    /// Like [`Server::start`], with environment variables set for this server's processes
    /// (until [`Server::set_env`] changes them).
    pub fn start_with_env(
        flavor: Flavor,
        dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut server = Server {
            flavor,
            child: None,
            port: free_port(),
            data_dir: dir.join("data"),
            log_path: dir.join("server.log"),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            ready_lines_before: None,
        };
        for (key, value) in env {
            server.set_env(key, Some(value));
        }
        server.launch();
        server.wait_ready();
        server
    }

    /// Sets (`Some`) or removes (`None`) an environment variable for the next launches.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(known, _)| known != key);
        self.env.push((key.to_string(), value.map(str::to_string)));
    }

    pub fn capstan(dir: &Path) -> Server {
        Server::start(Flavor::Capstan, dir, &[])
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let url = self.url();
        let program = match self.flavor {
            Flavor::Capstan => capstan_binary().to_string(),
            Flavor::Etcd => "etcd".to_string(),
        };
        let mut command = Command::new(program);
        command
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"));
        if self.flavor == Flavor::Etcd {
            let peer_port = free_port();
            command
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
                .env("ETCD_UNSUPPORTED_ARCH", "");
        }
        command.args(&self.extra_args);
        // The test's own CAPSTAN_LOG is dropped; one set for this server (`set_env`) applies.
        command.env_remove("CAPSTAN_LOG");
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        let log_err = log.try_clone().expect("clone log handle");
        command.stdin(Stdio::null()).stdout(log).stderr(log_err);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {:?}: {error}", self.flavor));
        self.child = Some(child);
    }

    /// Log text written since the server was first started.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn ready_lines(&self) -> usize {
        self.log().matches(READY_LINE).count()
    }

    fn wait_ready(&mut self) {
        let before = self.ready_lines_before.take().unwrap_or(0);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.ready_lines() > before {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{:?} exited with {status} before it was ready; log:\n{}",
                        self.flavor,
                        self.log()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{:?} not ready in {READY_TIMEOUT:?}; log:\n{}",
            self.flavor,
            self.log()
        );
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit (SIGKILL after 10 s).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc_kill(child.id() as i32, 15);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Starts the same server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill9();
        self.ready_lines_before = Some(self.ready_lines());
        self.launch();
        self.wait_ready();
    }

    /// Starts the process again without waiting for readiness; returns its exit status if it
    /// exits within `wait` (used to check refusals to start).
    pub fn start_expecting_exit(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        self.kill9();
        self.launch();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits up to `wait` for the running process to exit on its own (it is not signalled);
    /// returns its status, or `None` if it is still running (it then keeps running).
    pub fn wait_exit(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

/// Panics with an install hint when a Debian tool is missing.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: `apt-get install {package}` (the ./test script does this)"
    );
}

/// Runs Debian's etcdctl 3.4 (API v3) against `endpoint`, optionally feeding `stdin`.
pub fn etcdctl(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    require_tool("etcdctl", "etcd-client");
    let mut command = Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn etcdctl");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("etcdctl stdin");
        pipe.write_all(input.as_bytes())
            .expect("write etcdctl stdin");
    }
    child.wait_with_output().expect("etcdctl output")
}

/// etcdctl's stdout, asserting success.
pub fn etcdctl_ok(endpoint: &str, args: &[&str]) -> String {
    let output = etcdctl(endpoint, args, None);
    assert!(
        output.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A tokio runtime for tests that use the Rust `etcd-client` crate.
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub async fn connect(endpoint: &str) -> etcd_client::Client {
    etcd_client::Client::connect([format!("http://{endpoint}")], None)
        .await
        .expect("connect etcd-client")
}

/// etcdctl 3.6: target/tools/etcdctl36, else on PATH, else unpacked from
/// ../shared/ref/install.sh into target/tools (as tests/robustness/campaign.sh does).
pub fn etcdctl36() -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tools = root.join("target").join("tools");
    let local = tools.join("etcdctl36");
    if local.exists() {
        return Some(local.display().to_string());
    }
    let on_path = Command::new("sh")
        .arg("-c")
        .arg("command -v etcdctl36")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string());
    if on_path.is_some() {
        return on_path;
    }
    let installer = root
        .join("..")
        .join("shared")
        .join("ref")
        .join("install.sh");
    if installer.exists() {
        let _ = Command::new("bash").arg(&installer).arg(&tools).output();
        if local.exists() {
            return Some(local.display().to_string());
        }
    }
    None
}

/// One HTTP response with a text body, as a test client read it.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    pub fn text(&self) -> &str {
        &self.body
    }
}

/// The value of the HTTP header `name` (any case) among `headers`, as a test client read them.
pub fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// The accepted-connection line of the client listeners (debug level).
pub const ACCEPTED_LINE: &str = "accepted client connection";
/// `CAPSTAN_LOG` that turns the accepted-connection lines on (for the connection module only).
pub const ACCEPTED_LINES_ON: (&str, &str) = ("CAPSTAN_LOG", "info,capstan::grpc::connection=debug");

/// A capstan server whose log shows every accepted connection.
pub fn start_logging_connections(dir: &std::path::Path, args: &[&str]) -> Server {
    Server::start_with_env(Flavor::Capstan, dir, args, &[ACCEPTED_LINES_ON])
}

/// The value of field `name` in a JSON log line (a string's text without quotes).
pub fn log_field(line: &str, name: &str) -> Option<String> {
    let object: serde_json::Value = serde_json::from_str(line).ok()?;
    match object.get(name)? {
        serde_json::Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// (shard, peer) of every accepted-connection line of a server started with
/// [`start_logging_connections`].
pub fn accepted_connections(server: &Server) -> Vec<(usize, String)> {
    server
        .log()
        .lines()
        .filter(|line| line.contains(ACCEPTED_LINE))
        .map(|line| {
            let shard = log_field(line, "shard")
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("no shard in {line:?}"));
            let peer = log_field(line, "peer").unwrap_or_default();
            (shard, peer)
        })
        .collect()
}

/// The shards that accepted a connection so far.
pub fn shards_seen(server: &Server) -> std::collections::BTreeSet<usize> {
    accepted_connections(server)
        .into_iter()
        .map(|(shard, _)| shard)
        .collect()
}
