//! Log lines a client can trigger on every request are bounded: a flood of
//! requests refused because the provider is down, or because the server is
//! misconfigured, writes about a line a second, not a line a request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use auth_core::step::{Outcome, RequestView};
use auth_core::{AuthError, Backend, Decision, Gate};

/// Refuses every request with `error`.
struct Refusing(AuthError);

impl Backend for Refusing {
    fn authenticate(&self, _: &dyn RequestView, _: SystemTime) -> Outcome {
        Outcome::err(self.0.clone())
    }
}

/// What `f` logs on this thread.
fn logs_of(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_flood_of_refusals_writes_about_a_line_a_second() {
    for (error, line) in [
        (
            AuthError::provider_unavailable("connection refused"),
            "identity provider unavailable",
        ),
        (
            AuthError::Misconfigured {
                reason: "no peer address",
            },
            "server misconfigured",
        ),
    ] {
        let gate = Gate::new(Refusing(error));
        let req = auth_core::http::Request::new(());
        let started = Instant::now();
        let mut refused = 0;
        let logs = logs_of(|| {
            while started.elapsed() < Duration::from_millis(1_500) {
                for _ in 0..100 {
                    refused += u32::from(matches!(gate.decide_blocking(&req), Decision::Refuse(_)));
                }
            }
        });
        let lines = logs.matches(line).count();
        // At most one a second (two seconds begun), whatever the number of
        // refusals; and the next one says how many were held back.
        assert!(refused > 1_000, "{refused}");
        assert!(lines <= 2, "{lines} lines for {refused} refusals:\n{logs}");
        if lines == 2 {
            let held: u64 = logs
                .rsplit("also=")
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap();
            assert!(held > 0, "{logs}");
        }
    }
}
