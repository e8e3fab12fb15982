//! `make sam-invoke` and `make sam-api` end to end, as a user runs them: the function `sam build`
//! made, in its arm64 container under `sam local` (qemu on an x86_64 machine), against dynalite
//! on the Docker bridge seeded with the sample users, `/async` self-invoking through
//! local-lambda (crates/local-lambda). The scripts install and start what they need (Docker, qemu, the
//! base image), so the first run on a fresh machine takes minutes; each test stops everything
//! its command started, pass or fail.
//!
//! The two tests share the Docker daemon and each one's cleanup removes the SAM containers that
//! appeared while it ran, so they take turns.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::samples::{CHECKED_HEADERS, EXPECTATIONS, Expected, Source, expected_document};

/// One test at a time: see the module's doc.
static DOCKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fresh machine installs Docker and qemu, builds the base image and the arm64 function
/// (about ten minutes on two cores) before the first container runs.
const SETUP_PATIENCE: Duration = Duration::from_secs(30 * 60);
/// A task of a few milliseconds, delivered by local-lambda to start-lambda's warm container.
const TASK_PATIENCE: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `events/`, sorted.
fn event_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("events"))
        .expect("read events/")
        .map(|entry| {
            entry
                .expect("events/ entry")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .collect();
    files.sort();
    files
}

fn expectation(file: &str) -> (Source, Expected) {
    EXPECTATIONS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|&(_, source, expected)| (source, expected))
        .unwrap_or_else(|| panic!("events/{file} has no entry in EXPECTATIONS"))
}

/// A `make` target in its own process group. Dropping it sends the group SIGINT, as Ctrl-C in a
/// terminal does, so the scripts clean up; what is left after a minute gets SIGKILL.
struct Make {
    child: Child,
}

impl Make {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        // SIGINT as a terminal's shell leaves it: a test run started in the background of a
        // non-interactive shell (a CI step, `cmd &`) inherits it ignored, and Ctrl-C would
        // reach nothing.
        let mut command = Command::new("env");
        let child = support::without_cargo_test_env(&mut command)
            .args(["--default-signal=INT", "make"])
            .arg("--no-print-directory")
            .args(args)
            .envs(env.iter().copied())
            .current_dir(root())
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start make");
        Self { child }
    }

    fn signal_group(&self, signal: &str) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args([signal, "--", &group])
            .stderr(Stdio::null())
            .status();
    }

    fn group_is_gone(&self) -> bool {
        !Command::new("kill")
            .args(["-0", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status()
            .expect("kill -0")
            .success()
    }

    /// Every process of the group has exited (within 10 s of make itself).
    fn assert_group_gone(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.group_is_gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        if !self.group_is_gone() {
            let left = Command::new("ps")
                .args(["-o", "pid,args", "-g", &self.child.id().to_string()])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            panic!("processes of {what} outlived it:\n{left}");
        }
    }

    /// Waits for make to exit, at most `patience`.
    fn wait(&mut self, patience: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait for make") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

impl Drop for Make {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal_group("-INT");
            self.wait(Duration::from_secs(60));
        }
        // The scripts' own children (dynalite, local-lambda, SAM) share the group.
        self.signal_group("-KILL");
        let _ = self.child.wait();
    }
}

/// The SAM containers of the daemon, when one answers.
fn sam_containers() -> Option<BTreeSet<String>> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            "label=sam.cli.container.type",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    })
}

/// What a run leaves behind: a daemon that did not answer before still does not (the scripts
/// stop the dockerd they start), and no SAM container was added.
fn assert_left_as_found(before: &Option<BTreeSet<String>>) {
    let after = sam_containers();
    match before {
        None => assert_eq!(after, None, "a dockerd the run started still answers"),
        Some(before) => {
            let added: Vec<&String> = after
                .iter()
                .flatten()
                .filter(|id| !before.contains(*id))
                .collect();
            assert!(added.is_empty(), "containers left behind: {added:?}");
        }
    }
}

/// The first page of `limit=2` the function must answer for the sample users: the seed example
/// (which the scripts have built) run against a loopback dynalite of this test's, read back in DynamoDB's own Scan order (the
/// same for the same keys in any dynalite).
async fn sample_users_first_page() -> Value {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let users_table = format!("users-{suffix}");
    // As the scripts built it (cargo run would rebuild it after any edit made meanwhile).
    let seed = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("debug/examples/seed");
    let status = Command::new(seed)
        .env("AWS_ENDPOINT_URL_DYNAMODB", support::dynamodb_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("USERS_TABLE", &users_table)
        .env("TASKS_TABLE", format!("tasks-{suffix}"))
        .current_dir(root())
        .stdout(Stdio::null())
        .status()
        .expect("run the seed example");
    assert!(status.success(), "seed: {status}");
    let scan = support::dynamodb_client(support::dynamodb_endpoint())
        .scan()
        .table_name(&users_table)
        .limit(2)
        .send()
        .await
        .expect("scan users");
    let users: Vec<Value> = scan
        .items()
        .iter()
        .map(|item| {
            let field = |name: &str| item[name].as_s().expect("string attribute").clone();
            json!({"id": field("id"), "name": field("name"), "email": field("email")})
        })
        .collect();
    assert_eq!(users.len(), 2);
    let cursor = URL_SAFE_NO_PAD.encode(json!({"id": users[1]["id"]}).to_string());
    json!({"users": users, "next_cursor": cursor})
}

/// The response document with `body` parsed and the header maps reduced to CHECKED_HEADERS.
fn http_document(file: &str, document: &Value) -> Value {
    let text = document["body"]
        .as_str()
        .unwrap_or_else(|| panic!("{file}: no text body in {document}"));
    let mut parsed = document.clone();
    parsed["body"] = serde_json::from_str(text).expect("a JSON body");
    for field in ["headers", "multiValueHeaders"] {
        if let Some(headers) = parsed.get_mut(field).and_then(Value::as_object_mut) {
            headers.retain(|name, _| CHECKED_HEADERS.contains(&name.as_str()));
        }
    }
    parsed
}

fn json_headers(body: &Value) -> Vec<(&'static str, String)> {
    vec![
        ("content-length", body.to_string().len().to_string()),
        ("content-type", "application/json".to_owned()),
    ]
}

/// The Lambda request id the function put in an error body: a lowercase UUID.
fn request_id_of(file: &str, body: &Value) -> String {
    let id = body["error"]["request_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{file}: no request id in {body}"))
        .to_owned();
    assert!(
        uuid::Uuid::try_parse(&id).is_ok_and(|u| u.hyphenated().to_string() == id),
        "{file}: request id {id:?} is a UUID"
    );
    id
}

/// A task answer of GET /tasks/{id}: succeeded in one attempt, with consistent times.
fn assert_succeeded_once(context: &str, task: &Value, task_id: &str) {
    assert_eq!(task["task_id"], task_id, "{context}: {task}");
    assert_eq!(task["status"], "succeeded", "{context}: {task}");
    assert_eq!(task["attempts"], 1, "{context}: {task}");
    assert_eq!(task["error"], Value::Null, "{context}: {task}");
    assert!(task["result"].is_object(), "{context}: {task}");
    let created = task["created_at"].as_str().expect("created_at");
    let updated = task["updated_at"].as_str().expect("updated_at");
    assert!(created <= updated, "{context}: {task}");
}

#[test]
fn every_event_file_has_an_expected_outcome_under_sam_local_invoke() {
    let files: BTreeSet<String> = event_files().into_iter().collect();
    let expected: BTreeSet<String> = EXPECTATIONS
        .iter()
        .map(|(name, _, _)| (*name).to_owned())
        .collect();
    assert_eq!(files, expected);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "make test-containers: Docker"]
async fn make_sam_invoke_answers_every_sample_event_in_an_arm64_container_as_the_replay_does() {
    let _turn = DOCKER.lock().await;
    let before = sam_containers();
    let results = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sam-invoke-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&results).expect("results directory");
    let files = event_files();
    let event_arg = files
        .iter()
        .map(|f| format!("events/{f}"))
        .collect::<Vec<_>>()
        .join(" ");

    let mut make = Make::start(
        &["sam-invoke", &format!("EVENT={event_arg}")],
        &[("SAM_INVOKE_RESULTS", results.to_str().expect("UTF-8 path"))],
    );
    let status = make
        .wait(SETUP_PATIENCE)
        .expect("make sam-invoke did not finish in time");
    assert!(status.success(), "make sam-invoke: {status}");
    make.assert_group_gone("make sam-invoke");
    assert_left_as_found(&before);

    let users_page = sample_users_first_page().await;
    let mut task_ids = Vec::new();
    for file in &files {
        let (source, expected) = expectation(file);
        let text = std::fs::read_to_string(results.join(file))
            .unwrap_or_else(|_| panic!("{file}: no result written"));
        let document: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{file}: the result is not JSON: {text}"));
        match expected {
            Expected::UsersPage => assert_eq!(
                http_document(file, &document),
                expected_document(source, 200, &json_headers(&users_page), users_page.clone()),
                "{file}"
            ),
            Expected::Ok { body } => {
                let body: Value = serde_json::from_str(body).expect("JSON");
                assert_eq!(
                    http_document(file, &document),
                    expected_document(source, 200, &json_headers(&body), body),
                    "{file}"
                );
            }
            Expected::TaskStarted { .. } => {
                let parsed = http_document(file, &document);
                let task_id = parsed["body"]["task_id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: no task id in {parsed}"))
                    .to_owned();
                let status_url = format!("/tasks/{task_id}");
                let body = json!({"message": "Task started", "task_id": task_id, "status_url": status_url});
                let mut headers = json_headers(&body);
                headers.push(("location", status_url));
                assert_eq!(
                    parsed,
                    expected_document(source, 202, &headers, body),
                    "{file}"
                );
                let stem = file.trim_end_matches(".json");
                let task_text = std::fs::read_to_string(results.join(format!("{stem}.task.json")))
                    .unwrap_or_else(|_| panic!("{file}: the script showed no task"));
                let task: Value = serde_json::from_str(&task_text).expect("task JSON");
                assert_succeeded_once(file, &task, &task_id);
                task_ids.push(task_id);
            }
            Expected::NotFound { message } => {
                let parsed = http_document(file, &document);
                let request_id = request_id_of(file, &parsed["body"]);
                let body = json!({"error": {"code": "not_found", "message": message, "request_id": request_id}});
                assert_eq!(
                    parsed,
                    expected_document(source, 404, &json_headers(&body), body),
                    "{file}"
                );
            }
            Expected::FunctionError {
                error_type,
                message,
            } => assert_eq!(
                document,
                json!({"errorType": error_type, "errorMessage": message}),
                "{file}"
            ),
            Expected::Answer { document: expected } => {
                let expected: Value = serde_json::from_str(expected).expect("JSON");
                assert_eq!(document, expected, "{file}");
            }
        }
    }
    assert_eq!(task_ids.len(), 2);
    assert_ne!(task_ids[0], task_ids[1]);
    let _ = std::fs::remove_dir_all(&results);
}

/// One HTTP/1.1 request to the local API; (status, JSON body).
fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to sam local");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read answer");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    (status, body)
}

/// Until something accepts on the port, or make has exited.
fn wait_for_port(make: &mut Make, port: u16) {
    let deadline = Instant::now() + SETUP_PATIENCE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = make.child.try_wait().expect("make") {
            panic!("make sam-api exited before it served: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "make sam-api did not serve in time"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "make test-containers: Docker"]
async fn make_sam_api_serves_users_tasks_404s_and_the_deployed_suite_and_ctrl_c_stops_it_all() {
    let _turn = DOCKER.lock().await;
    let before = sam_containers();
    let port = support::free_port();
    let mut make = Make::start(&["sam-api"], &[("SAM_PORT", &port.to_string())]);
    wait_for_port(&mut make, port);

    let (status, body) = request(port, "GET", "/users?limit=2", "");
    assert_eq!((status, body), (200, sample_users_first_page().await));

    let (status, started) = request(port, "POST", "/async", r#"{"delay_ms": 50}"#);
    assert_eq!(status, 202, "{started}");
    let task_id = started["task_id"].as_str().expect("task id").to_owned();
    let deadline = Instant::now() + TASK_PATIENCE;
    let task = loop {
        let (status, task) = request(port, "GET", &format!("/tasks/{task_id}"), "");
        assert_eq!(status, 200, "{task}");
        if task["status"] == "succeeded" || Instant::now() > deadline {
            break task;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_succeeded_once("POST /async", &task, &task_id);

    let (status, body) = request(port, "GET", "/nope", "");
    let request_id = request_id_of("GET /nope", &body);
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error": {"code": "not_found", "message": "No route for GET /nope", "request_id": request_id}})
        )
    );

    // The suite a deployer runs against AWS (`make test-deployed`), against sam local's API.
    let suite = std::process::Command::new("python3")
        .arg(root().join("tests/deployed/suite.py"))
        .env("API_URL", format!("http://127.0.0.1:{port}"))
        .env("API_TASK_TIMEOUT", TASK_PATIENCE.as_secs().to_string())
        .env_remove("API_TOKEN")
        .env_remove("API_ORIGIN")
        .output()
        .expect("python3 runs the deployed suite");
    assert!(
        suite.status.success(),
        "the deployed suite against make sam-api:\n{}{}",
        String::from_utf8_lossy(&suite.stdout),
        String::from_utf8_lossy(&suite.stderr)
    );

    // Ctrl-C: the terminal sends SIGINT to the whole foreground group.
    make.signal_group("-INT");
    let status = make
        .wait(Duration::from_secs(90))
        .expect("make sam-api did not stop within 90 s of Ctrl-C");
    assert!(
        !status.success(),
        "interrupted, make reports failure: {status}"
    );
    make.assert_group_gone("make sam-api");
    assert_left_as_found(&before);
}
