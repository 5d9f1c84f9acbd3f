//! A real Redis (Debian's `redis-server`, installed by `scripts/test.sh`)
//! on 127.0.0.1 with a free port, no persistence; stopped when dropped, and
//! stoppable and restartable on the same port to test an outage.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::StartError;

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
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| StartError(format!("no free port: {e}")))?
            .port();
        let mut server = RedisServer {
            child: None,
            port,
            tls: None,
        };
        server.restart()?;
        Ok(server)
    }

    /// A server that speaks TLS only, with these settings (`--tls-cert-file
    /// <pem>` and so on, and any other, such as `--requirepass`).
    ///
    /// # Panics
    /// As [`start`](Self::start).
    #[track_caller]
    pub fn start_tls(settings: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| crate::missing(&StartError(format!("no free port: {e}"))))
            .port();
        let mut server = RedisServer {
            child: None,
            port,
            tls: Some(settings.iter().map(|s| (*s).to_owned()).collect()),
        };
        server.restart().unwrap_or_else(|e| crate::missing(&e));
        server
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
        self.stop();
        let port = self.port.to_string();
        let listen: Vec<&str> = match &self.tls {
            None => vec!["--port", &port],
            Some(settings) => ["--port", "0", "--tls-port", &port]
                .into_iter()
                .chain(settings.iter().map(String::as_str))
                .collect(),
        };
        let child = Command::new("redis-server")
            .args(listen)
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
            })?;
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                self.stop();
                return Err(StartError("redis-server did not start".into()));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
