//! A real Redis (Debian's `redis-server`, installed by `scripts/test.sh`)
//! on 127.0.0.1 with a free port, no persistence; stopped when dropped, and
//! stoppable and restartable on the same port to test an outage.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{StartError, free_port};

/// `redis-server` on 127.0.0.1 with these settings, no persistence, its
/// output discarded.
fn spawn_redis(settings: &[&str]) -> Result<Child, StartError> {
    Command::new("redis-server")
        .args(settings)
        .args(["--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            StartError(format!(
                "cannot run redis-server ({e}): bash scripts/test.sh installs it"
            ))
        })
}

/// A `redis-server` child process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// TLS only (`--tls-port`), with these settings.
    tls: Option<Vec<String>>,
}

impl RedisServer {
    /// Starts a server on a free port and waits (up to 10 s) until it
    /// accepts connections.
    ///
    /// # Panics
    /// `redis-server` is not installed (`bash scripts/test.sh` installs it),
    /// or it did not come up: the test fails at once, saying so.
    #[track_caller]
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| crate::missing(&e))
    }

    /// [`start`](Self::start), returning the failure.
    ///
    /// # Errors
    /// As `start` panics.
    pub fn try_start() -> Result<Self, StartError> {
        Self::start_on_free_port(None)
    }

    /// Starts a server on a free port, on another one when the first turns
    /// out to be taken.
    fn start_on_free_port(tls: Option<Vec<String>>) -> Result<Self, StartError> {
        let mut server = RedisServer {
            child: None,
            port: 0,
            tls,
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            if let Listening::Up = server.spawn_listening()? {
                return Ok(server);
            }
        }
        Err(StartError(format!(
            "redis-server exited at start on {PORT_ATTEMPTS} ports in a row"
        )))
    }

    /// A server that speaks TLS only, with these settings (`--tls-cert-file
    /// <pem>` and so on, and any other, such as `--requirepass`).
    ///
    /// # Panics
    /// As [`start`](Self::start).
    #[track_caller]
    pub fn start_tls(settings: &[&str]) -> Self {
        Self::start_on_free_port(Some(settings.iter().map(|s| (*s).to_owned()).collect()))
            .unwrap_or_else(|e| crate::missing(&e))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (an outage); its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`stop`](Self::stop)).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn restart(&mut self) -> Result<(), StartError> {
        match self.spawn_listening()? {
            Listening::Up => Ok(()),
            Listening::Exited(status) => Err(StartError(format!(
                "redis-server exited ({status}): port {} is taken",
                self.port
            ))),
        }
    }

    /// Starts the process on its port and waits until it listens or exits.
    fn spawn_listening(&mut self) -> Result<Listening, StartError> {
        self.stop();
        let port = self.port.to_string();
        let listen: Vec<&str> = match &self.tls {
            None => vec!["--port", &port],
            Some(settings) => ["--port", "0", "--tls-port", &port]
                .into_iter()
                .chain(settings.iter().map(String::as_str))
                .collect(),
        };
        let mut child = spawn_redis(&listen)?;
        // A TLS port takes no plain `PING`.
        let listening = wait_listening(&mut child, self.port, self.tls.is_none());
        self.child = Some(child);
        if !matches!(listening, Ok(Listening::Up)) {
            self.stop();
        }
        listening
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster on 127.0.0.1: six `redis-server --cluster-enabled yes`
/// nodes joined by `redis-cli --cluster create --cluster-replicas 1`
/// (three primaries, three replicas), with a password, failing over a
/// second after a primary stops answering; its files in a directory of its
/// own. Every node is killed and the directory removed when dropped.
pub struct RedisCluster {
    nodes: Vec<ClusterNode>,
    dir: std::path::PathBuf,
}

struct ClusterNode {
    port: u16,
    child: Option<Child>,
}

/// The cluster's password (`requirepass` and `masterauth`).
pub const CLUSTER_PASSWORD: &str = "cluster-secret";

/// Waits (up to 10 s) until `child` serves on `port`: it accepts a
/// connection and, when `ping`, answers a `PING`. A bare connect is not
/// enough for a cluster node: the kernel accepts one as soon as the port is
/// bound, before the node binds its bus port and exits if that is taken.
///
/// # Errors
/// `Exited` when the process ended first (a port was taken after all),
/// `Err` when it did not come up in time.
fn wait_listening(child: &mut Child, port: u16, ping: bool) -> Result<Listening, StartError> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Listening::Exited(status));
        }
        if serves(port, ping) {
            return Ok(Listening::Up);
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(StartError(format!(
                "redis-server did not listen on port {port} within 10 s"
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Something accepts connections on `port` and, when `ping`, answers a
/// `PING` within a second (`-NOAUTH` will do).
fn serves(port: u16, ping: bool) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    !ping
        || (stream.write_all(b"PING\r\n").is_ok() && stream.read(&mut [0; 64]).is_ok_and(|n| n > 0))
}

enum Listening {
    Up,
    Exited(std::process::ExitStatus),
}

/// The last lines of a node's log, to say why it did not start.
fn log_tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// How many times a server whose port was taken is started on another.
const PORT_ATTEMPTS: usize = 5;

impl RedisCluster {
    /// Starts the six nodes, creates the cluster and waits (up to 30 s)
    /// until every node says it is ok.
    ///
    /// # Panics
    /// `redis-server` or `redis-cli` is not installed (`bash
    /// scripts/test.sh` installs them), or the cluster did not form.
    #[track_caller]
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| crate::missing(&e))
    }

    /// [`start`](Self::start), returning the failure.
    ///
    /// # Errors
    /// As `start` panics.
    pub fn try_start() -> Result<Self, StartError> {
        static CLUSTERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("auth-tests-cluster-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| StartError(format!("{}: {e}", dir.display())))?;
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..6 {
            let node = cluster.start_node()?;
            cluster.nodes.push(node);
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args([
                "-a",
                CLUSTER_PASSWORD,
                "--no-auth-warning",
                "--cluster",
                "create",
            ])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| StartError(format!("cannot run redis-cli ({e})")))?;
        if !created.status.success() {
            return Err(StartError(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&created.stdout)
            )));
        }
        cluster.wait_until_ok(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// Starts one node on free ports, on others when one turns out to be
    /// taken.
    fn start_node(&self) -> Result<ClusterNode, StartError> {
        let mut exits = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let (port, bus) = (free_port()?, free_port()?);
            let dir = self.dir.join(port.to_string());
            std::fs::create_dir_all(&dir)
                .map_err(|e| StartError(format!("{}: {e}", dir.display())))?;
            let (port_arg, bus_arg) = (port.to_string(), bus.to_string());
            let dir_arg = dir.to_string_lossy();
            let log = dir.join("redis.log");
            let log_arg = log.to_string_lossy();
            let mut child = spawn_redis(&[
                "--logfile",
                &log_arg,
                "--port",
                &port_arg,
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus_arg,
                "--cluster-config-file",
                "nodes.conf",
                // A replica takes over a second after its primary stops
                // answering, however long since it last heard from it.
                "--cluster-node-timeout",
                "1000",
                "--cluster-replica-validity-factor",
                "0",
                "--repl-diskless-sync",
                "yes",
                "--dir",
                &dir_arg,
                "--requirepass",
                CLUSTER_PASSWORD,
                "--masterauth",
                CLUSTER_PASSWORD,
            ])?;
            match wait_listening(&mut child, port, true) {
                Ok(Listening::Up) => {
                    return Ok(ClusterNode {
                        port,
                        child: Some(child),
                    });
                }
                Ok(Listening::Exited(status)) => {
                    exits += &format!("\n{status}: {}", log_tail(&log));
                }
                Err(StartError(e)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(StartError(format!("{e}: {}", log_tail(&log))));
                }
            }
        }
        Err(StartError(format!(
            "a cluster node exited at start on {PORT_ATTEMPTS} port pairs in a row:{exits}"
        )))
    }

    /// Every node's port, primaries and replicas.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The nodes still running, as `redis://:<password>@127.0.0.1:<port>`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| format!("redis://:{CLUSTER_PASSWORD}@127.0.0.1:{}", n.port))
            .collect()
    }

    /// `redis-cli -p <port> <args>` (authenticated): its output, trimmed.
    ///
    /// # Panics
    /// `redis-cli` did not run.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args([
                "-a",
                CLUSTER_PASSWORD,
                "--no-auth-warning",
                "-p",
                &port.to_string(),
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| crate::missing(&StartError(format!("cannot run redis-cli ({e})"))));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The ports of the running primaries.
    pub fn primaries(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .filter(|n| self.cli(n.port, &["ROLE"]).starts_with("master"))
            .map(|n| n.port)
            .collect()
    }

    /// The port of the primary that serves `slot`, as a running node sees
    /// it.
    pub fn primary_of(&self, slot: u16) -> Option<u16> {
        let asker = self.nodes.iter().find(|n| n.child.is_some())?;
        let nodes = self.cli(asker.port, &["CLUSTER", "NODES"]);
        nodes.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            if !fields.get(2)?.contains("master") || fields[2].contains("fail") {
                return None;
            }
            let port: u16 = fields[1].split([':', '@']).nth(1)?.parse().ok()?;
            let serves = fields[8..].iter().any(|range| {
                let mut ends = range.split('-');
                let (Some(start), end) = (ends.next(), ends.next()) else {
                    return false;
                };
                let (Ok(start), Ok(end)) =
                    (start.parse::<u16>(), end.unwrap_or(start).parse::<u16>())
                else {
                    return false;
                };
                (start..=end).contains(&slot)
            });
            serves.then_some(port)
        })
    }

    /// The hash slot of `key`.
    pub fn slot(&self, key: &str) -> u16 {
        let asker = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .map_or(0, |n| n.port);
        self.cli(asker, &["CLUSTER", "KEYSLOT", key])
            .parse()
            .unwrap_or(u16::MAX)
    }

    /// Every key on the running primaries matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .primaries()
            .into_iter()
            .flat_map(|port| {
                self.cli(port, &["--scan", "--pattern", pattern])
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|k| !k.is_empty())
            .collect();
        keys.sort();
        keys
    }

    /// Kills the node on `port` with SIGKILL (a crash).
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port)
            && let Some(mut child) = node.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every running node says `cluster_state:ok` (which it
    /// says only while every slot is served) and slots 0, 8191 and 16383
    /// have a running primary in `CLUSTER SLOTS`.
    ///
    /// # Errors
    /// Not so within `limit`.
    pub fn wait_until_ok(&self, limit: Duration) -> Result<(), StartError> {
        let started = Instant::now();
        loop {
            let running: Vec<u16> = self
                .nodes
                .iter()
                .filter(|n| n.child.is_some())
                .map(|n| n.port)
                .collect();
            let ok = running.iter().all(|&port| {
                self.cli(port, &["CLUSTER", "INFO"])
                    .contains("cluster_state:ok")
            }) && [0, 8191, 16383]
                .iter()
                .all(|&slot| self.primary_of(slot).is_some_and(|p| running.contains(&p)));
            if ok {
                return Ok(());
            }
            if started.elapsed() > limit {
                let nodes = running
                    .first()
                    .map(|&port| self.cli(port, &["CLUSTER", "NODES"]))
                    .unwrap_or_default();
                return Err(StartError(format!(
                    "the cluster was not ok within {limit:?}:\n{nodes}"
                )));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
