//! A real browser keeps the anonymous session: headless Chromium (Debian's
//! `chromium`, driven by `chromedriver` over the W3C WebDriver protocol)
//! opens `/whoami` of the running demo (axum) twice and gets the same
//! anonymous identifier; a fresh profile gets a different one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use auth_examples::{Demo, DemoConfig, axum_router};
use auth_tests::serve_axum;
use serde_json::{Value, json};

fn serve_demo() -> String {
    serve_axum(axum_router(&Demo::new(&DemoConfig::default()).unwrap()))
}

/// `chromedriver` on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        // A driver that exits at start (its port taken meanwhile) is
        // started again on another.
        for _ in 0..5 {
            let port = auth_tests::free_port().unwrap_or_else(|e| auth_tests::missing(&e));
            let mut child = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    auth_tests::missing(&auth_tests::StartError(format!(
                        "cannot run chromedriver ({e}): Debian's chromium and chromium-driver are needed"
                    )))
                });
            let url = format!("http://127.0.0.1:{port}");
            let started = Instant::now();
            while ureq::get(format!("{url}/status")).call().is_err() {
                if child.try_wait().is_ok_and(|exit| exit.is_some()) {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "chromedriver did not start"
                );
                thread::sleep(Duration::from_millis(100));
            }
            if child.try_wait().is_ok_and(|exit| exit.is_none()) {
                return Driver { child, url };
            }
        }
        panic!("chromedriver exited at start on five ports in a row")
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        let mut response = ureq::post(format!("{}{path}", self.url))
            .send_json(body)
            .unwrap();
        response.body_mut().read_json().unwrap()
    }

    /// A browser with a fresh, empty profile.
    fn browser(&self) -> Browser<'_> {
        let profile = std::env::temp_dir().join(format!(
            "auth-browser-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let session = self.post("/session", &capabilities);
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_owned();
        Browser {
            driver: self,
            id,
            profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uuid_like() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

struct Browser<'a> {
    driver: &'a Driver,
    id: String,
    profile: PathBuf,
}

impl Browser<'_> {
    /// Opens `url` and returns the JSON the page shows.
    fn open_json(&self, url: &str) -> Value {
        self.driver
            .post(&format!("/session/{}/url", self.id), &json!({"url": url}));
        let text = self.driver.post(
            &format!("/session/{}/execute/sync", self.id),
            &json!({"script": "return document.body.innerText", "args": []}),
        );
        serde_json::from_str(text["value"].as_str().unwrap()).unwrap()
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = ureq::delete(format!("{}/session/{}", self.driver.url, self.id)).call();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[test]
fn the_browser_keeps_its_anonymous_session() {
    let base = serve_demo();
    let driver = Driver::start();
    let url = format!("{base}/whoami");

    let browser = driver.browser();
    let first = browser.open_json(&url);
    assert_eq!(first["source"], "anon", "{first}");
    let id = first["identifier"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let second = browser.open_json(&url);
    assert_eq!(
        second["identifier"],
        id.as_str(),
        "the browser sent the issued cookie back"
    );
    drop(browser);

    let fresh = driver.browser();
    let third = fresh.open_json(&url);
    assert_eq!(third["source"], "anon");
    assert_ne!(
        third["identifier"],
        id.as_str(),
        "a new profile is a new visitor"
    );
}
