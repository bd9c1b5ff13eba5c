//! Shared helpers for the end-to-end tests: start the real `kho` binary on a loopback port,
//! talk HTTP to it, and run the independent Python reader over its tables.
//!
//! The binary is found next to the test executable's directory (`target/<profile>/kho`);
//! build it first (`cargo build --bins`, which `scripts/test` does).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The admin token every test server starts with.
pub const ADMIN: &str = "test-admin-token-0123456789";

/// A running `kho serve`.
pub struct Server {
    child: Child,
    pub base: String,
    pub store: String,
    log: PathBuf,
}

/// Path of the built `kho` binary.
pub fn kho_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let name = format!("kho{}", std::env::consts::EXE_SUFFIX);
    // Tests run from target/<profile>/deps, binaries (the benchmarks) from target/<profile>.
    let dir = exe.parent().expect("exe dir");
    let bin = [dir.join(&name), dir.parent().unwrap_or(dir).join(&name)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| dir.join(&name));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` before the end-to-end tests",
        bin.display()
    );
    bin
}

impl Server {
    /// Starts `kho serve` on `store` with extra flags, and waits until it listens.
    pub fn start(store: &str, extra: &[&str]) -> Self {
        Self::start_with_env(store, extra, &[])
    }

    pub fn start_with_env(store: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("kho-test-{}.log", uuid::Uuid::new_v4()));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(kho_bin());
        cmd.args(["serve", "--store", store, "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("KHO_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "warn,buoyant_kernel=off,kho_api=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn kho");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { return };
                if let Some(url) = line.strip_prefix("kho listening on ") {
                    let _ = tx.send(url.to_owned());
                    break;
                }
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => Self {
                child,
                base,
                store: store.to_owned(),
                log,
            },
            Err(_) => {
                let _ = child.kill();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("kho did not start on {store}:\n{text}");
            }
        }
    }

    /// Kills the process at once (SIGKILL): a crash, not a shutdown.
    pub fn crash(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.store.clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Issues a token through the admin API and returns it.
    pub async fn token(&self, role: &str, sector: Option<&str>, name: &str) -> String {
        let resp = client()
            .post(self.url("/v1/admin/tokens"))
            .bearer_auth(ADMIN)
            .json(&json!({"role": role, "sector": sector, "name": name}))
            .send()
            .await
            .expect("issue token");
        assert_eq!(resp.status(), 201, "issuing a {role} token");
        let body: Value = resp.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// POSTs a body to a stream.
    pub async fn append(
        &self,
        token: Option<&str>,
        stream: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
        key: Option<&str>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = client()
            .post(self.url(&format!("/v1/streams/{stream}/events")))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let resp = req.send().await.expect("append request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body, headers)
    }

    /// `GET /v1/streams/{stream}` with a token.
    pub async fn stream(&self, token: &str, stream: &str) -> Value {
        let resp = client()
            .get(self.url(&format!("/v1/streams/{stream}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// The Python interpreter of the test venv (`KHO_TEST_PYTHON`), with `deltalake` and
/// `duckdb` installed. `None` skips, unless `KHO_REQUIRE_EXTERNAL` is set.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("KHO_TEST_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var_os("KHO_REQUIRE_EXTERNAL").is_none(),
                "KHO_REQUIRE_EXTERNAL is set but KHO_TEST_PYTHON is not"
            );
            eprintln!("skipped: KHO_TEST_PYTHON is not set");
            None
        }
    }
}

/// An S3 store URL under the test bucket (`KHO_TEST_S3_URL`), unique to the caller.
pub fn s3_store() -> Option<String> {
    match std::env::var("KHO_TEST_S3_URL") {
        Ok(base) => Some(format!(
            "{}/{}",
            base.trim_end_matches('/'),
            uuid::Uuid::new_v4()
        )),
        Err(_) => {
            assert!(
                std::env::var_os("KHO_REQUIRE_EXTERNAL").is_none(),
                "KHO_REQUIRE_EXTERNAL is set but KHO_TEST_S3_URL is not"
            );
            eprintln!("skipped: KHO_TEST_S3_URL is not set");
            None
        }
    }
}

/// Reads a Delta table with the Python `deltalake` package: one JSON object per row,
/// timestamps as microseconds since the epoch, sorted by `event_id`.
pub fn python_read(python: &Path, table_uri: &str) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/read_delta.py");
    let out = Command::new(python)
        .arg(script)
        .arg(table_uri)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python reader failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A stable UUID for a small number, for client-supplied event ids.
pub fn event_id(n: u64) -> String {
    format!("00000000-0000-7000-8000-{n:012}")
}

/// The metadata every test dataset carries (the catalog requires all of it).
pub fn dataset_metadata() -> Value {
    json!({"title": {"vi": "Hồ sơ", "en": "Dossiers"}, "description": {"vi": "Hồ sơ", "en": "Dossiers"},
        "theme": "GOVE", "keywords": ["hồ sơ"], "license": "cc-by-4.0", "accrual_periodicity": "monthly",
        "temporal": {"start": "2021-01-01", "end": "2021-12-31"}, "spatial": "Tỉnh Tây Ninh",
        "contact_point": {"name": "IOC", "email": "ioc@tayninh.gov.vn"}})
}

/// A dataset of `stream` releasing `columns` as they are, shared as `sharing`.
pub fn stream_dataset(id: &str, stream: &str, columns: &[&str], sharing: &str) -> Value {
    let columns: Vec<Value> = columns.iter().map(|c| json!({"name": c})).collect();
    json!({"id": id, "source": {"kind": "stream", "name": stream}, "columns": columns,
        "sharing": sharing, "importance": "other", "metadata": dataset_metadata()})
}

/// `n` `service.dossiers` receptions at `agency` as NDJSON, entity ids `HS-<agency>-<i>`.
pub fn dossier_lines(n: usize, agency: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{}\n",
                json!({"event_type": "dossier_received", "entity_id": format!("HS-{agency}-{i}"), "occurred_at": "2021-03-10T08:00:00+07:00",
                       "procedure_code": "TTHC-1", "agency_code": agency, "level": 4, "channel": "online",
                       "due_at": "2021-03-20T17:00:00+07:00"})
            )
        })
        .collect()
}

/// A running `kho demo`: its address, the center's token, and what it printed.
pub struct Demo {
    child: std::process::Child,
    pub base: String,
    pub center: String,
    pub output: Vec<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kho demo` and reads its output until it serves.
pub fn demo(store: &str, seed: &str) -> Demo {
    let mut child = Command::new(kho_bin())
        .args([
            "demo",
            "--store",
            store,
            "--listen",
            "127.0.0.1:0",
            "--seed",
            seed,
        ])
        .env("KHO_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "warn,buoyant_kernel=off,deltalake_core=error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kho demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut output = Vec::new();
    let started = std::time::Instant::now();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(600))
            .expect("kho demo stopped talking");
        output.push(line.clone());
        if line.starts_with("serving until") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "{output:#?}");
    }
    let base = output
        .iter()
        .find_map(|l| l.strip_prefix("kho listening on "))
        .unwrap()
        .to_owned();
    let center = output
        .iter()
        .find_map(|l| l.strip_prefix("  center    "))
        .unwrap()
        .to_owned();
    Demo {
        child,
        base,
        center,
        output,
    }
}

impl Demo {
    /// A view's rows, as the center reads them.
    pub async fn view(&self, name: &str) -> Vec<Value> {
        let r = client()
            .get(format!("{}/v1/views/{name}", self.base))
            .bearer_auth(&self.center)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// The token the demo printed for `who` (`center`, `steward`, a sector…).
    pub fn token(&self, who: &str) -> String {
        let prefix = format!("  {who:<9} ");
        self.output
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {who} token in {:#?}", self.output))
            .to_owned()
    }
}
