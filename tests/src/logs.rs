//! Everything a test binary logs, captured: the servers under test run on
//! other threads, so the subscriber is the process's (debug and above).

use std::sync::{Mutex, OnceLock};

/// The process's log so far, the capturing subscriber installed on the
/// first call.
///
/// # Panics
/// When another global subscriber was installed first.
#[allow(clippy::expect_used)]
pub fn captured() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Writer(log))
            .try_init()
            .expect("no other global subscriber");
        log
    })
}

/// The log so far, as text.
pub fn text() -> String {
    let log = captured()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    String::from_utf8_lossy(&log).into_owned()
}

/// The lines logged since the last call that hold `needle` (the log is
/// emptied).
pub fn take_lines(needle: &str) -> Vec<String> {
    let bytes = std::mem::take(
        &mut *captured()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|line| line.contains(needle))
        .map(str::to_owned)
        .collect()
}

struct Writer(&'static Mutex<Vec<u8>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
