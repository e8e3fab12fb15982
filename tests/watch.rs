//! End to end as `make dev` runs the API: `scripts/dev.sh` itself, so `cargo
//! lambda watch` serving the real binary over HTTP, and `local-lambda`
//! (crates/local-lambda) as the function's Lambda API, delivering each
//! task event through watch in the background with Lambda's retries. The
//! tables are a fresh pair on the tests' dynalite. The two tests take turns:
//! each starts its own stack, and the "answers within a second" bound must
//! not depend on the other's load.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_api::tasks::TaskStore;
use serde_json::{Value, json};
use support::Fixture;

/// One stack at a time (see the module docs).
static ONE_STACK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The function timeout local-lambda applies here: Lambda's retries come 6 s
/// and 12 s after a failure (60 s and 120 s of 90 s), and the longest task of
/// these tests (5 s) stays well within it.
const FUNCTION_TIMEOUT_MS: u64 = 9_000;
/// The origins `CORS_ALLOWED_ORIGINS` lists: a comma must reach the function.
const ORIGINS: [&str; 2] = ["https://one.example.com", "https://two.example.com"];
/// How long a first start may take: dev.sh builds the seed example and
/// local-lambda, and watch the function, when they are not built yet.
const START_PATIENCE: Duration = Duration::from_secs(900);

/// `scripts/dev.sh` in its own process group, stopped with everything it
/// started when the test ends, pass or fail.
struct DevStack {
    child: Child,
    /// watch: the API.
    port: u16,
    /// local-lambda: the function's Lambda API.
    lambda_port: u16,
    /// dev.sh's stdout and stderr (watch passes the function's logs on), in order.
    output: Arc<Mutex<Vec<String>>>,
}

impl Drop for DevStack {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl DevStack {
    fn lines(&self) -> Vec<String> {
        self.output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The last lines of output, for a failure message.
    fn tail(&self) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

/// Runs `make dev`'s script against `fixture`'s tables and waits until the
/// API answers and every watch instance has started.
async fn start_dev(fixture: &Fixture) -> DevStack {
    use std::os::unix::process::CommandExt;
    let port = support::free_port();
    let mut command = Command::new("scripts/dev.sh");
    let mut child = support::without_cargo_test_env(&mut command)
        // A test serves the code it started with.
        .arg("--ignore-changes")
        .env("DEV_PORT", port.to_string())
        .env("LAMBDA_PORT", "0")
        .env("USERS_TABLE", &fixture.users_table)
        .env("TASKS_TABLE", &fixture.tasks_table)
        .env("AWS_ENDPOINT_URL_DYNAMODB", support::dynamodb_endpoint())
        .env_remove("AWS_ENDPOINT_URL_LAMBDA")
        .env("CORS_ALLOWED_ORIGINS", ORIGINS.join(","))
        .env("FUNCTION_TIMEOUT_MS", FUNCTION_TIMEOUT_MS.to_string())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start scripts/dev.sh");
    let output = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                output
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        });
    }
    let mut stack = DevStack {
        child,
        port,
        lambda_port: 0,
        output,
    };

    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = stack.child.try_wait() {
            panic!("make dev stopped ({status}):\n{}", stack.tail());
        }
        if stack.lambda_port == 0 {
            stack.lambda_port = stack
                .lines()
                .iter()
                .find_map(|line| {
                    line.strip_prefix("The function's Lambda API (Invoke): http://127.0.0.1:")
                })
                .and_then(|port| port.trim().parse().ok())
                .unwrap_or(0);
        }
        if stack.lambda_port != 0
            && matches!(
                http(port, "GET", "/users?limit=1", &[], "").await,
                Ok((200, ..))
            )
        {
            break;
        }
        assert!(
            started.elapsed() < START_PATIENCE,
            "make dev never answered:\n{}",
            stack.tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // watch starts an instance (`cargo run`) per concurrent request, up to
    // its --concurrency of 4: get them all running, so no timed request below
    // waits for one to start.
    let warm_ups: Vec<_> = (0..8)
        .map(|_| tokio::spawn(http(port, "GET", "/users?limit=1", &[], "")))
        .collect();
    for warm_up in warm_ups {
        let (status, ..) = warm_up.await.expect("warm-up").expect("warm-up request");
        assert_eq!(status, 200);
    }
    stack
}

/// One HTTP/1.1 request: (status, head, body as JSON or text).
async fn http(
    port: u16,
    method: &'static str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String, Value)> {
    let path = path.to_owned();
    let body = body.to_owned();
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    tokio::task::spawn_blocking(move || request(port, method, &path, &headers, &body))
        .await
        .expect("request thread")
}

fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<(u16, String, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((
        status,
        head,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// One reading of a task by a poller: its status, attempts and error, and
/// the `Retry-After` it was told (seconds).
#[derive(Clone, Debug, PartialEq)]
struct Reading {
    status: String,
    attempts: Value,
    error: Value,
    retry_after: Option<u64>,
}

/// Polls `GET /tasks/{task_id}` every 200 ms until the task has ended (or
/// 60 s have passed), as a client does, then twice more: `succeeded`,
/// `failed` and `canceled` are final, so those readings must agree. Returns
/// the last body and every change of reading, in order.
async fn follow(stack: &DevStack, task_id: &str) -> (Value, Vec<Reading>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut readings: Vec<Reading> = Vec::new();
    let mut after_end = 0;
    loop {
        let (status, head, task) = http(stack.port, "GET", &format!("/tasks/{task_id}"), &[], "")
            .await
            .expect("GET /tasks");
        assert_eq!(status, 200, "{task}");
        let retry_after = head
            .lines()
            .find_map(|line| line.strip_prefix("retry-after:"))
            .and_then(|seconds| seconds.trim().parse().ok());
        let reading = Reading {
            status: task["status"].as_str().unwrap_or_default().to_owned(),
            attempts: task["attempts"].clone(),
            error: task["error"].clone(),
            retry_after,
        };
        let ended = is_final(&reading.status);
        assert_eq!(
            reading.retry_after.is_none(),
            ended,
            "Retry-After while, and only while, the task has not ended: {reading:?}"
        );
        // Retry-After counts down: a change of its value alone is no news.
        let news = readings.last().is_none_or(|last| {
            (&last.status, &last.attempts, &last.error)
                != (&reading.status, &reading.attempts, &reading.error)
        });
        if news {
            readings.push(reading);
        }
        if ended {
            after_end += 1;
        }
        if after_end == 3 || Instant::now() > deadline {
            return (task, readings);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a status is final.
fn is_final(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled")
}

/// No reading after a final one says anything else.
fn assert_final_is_final(readings: &[Reading], stack: &DevStack) {
    if let Some(first_end) = readings.iter().position(|r| is_final(&r.status)) {
        assert_eq!(
            readings.len(),
            first_end + 1,
            "a final status was followed by another reading: {readings:#?}\n{}",
            stack.tail()
        );
    }
}

/// How the function's log lines tell a task's attempts: each `task started`
/// and its end (`Task completed`, `task attempt failed`), in the order printed.
fn attempt_lines(lines: &[String], task_id: &str) -> Vec<String> {
    let span = format!("task{{task_id={task_id}}}");
    lines
        .iter()
        .filter(|line| line.contains(&span))
        .filter_map(|line| {
            ["task started", "Task completed", "task attempt failed"]
                .into_iter()
                .find(|event| line.contains(event))
                .map(|event| {
                    let attempt = line
                        .split("attempt=")
                        .nth(1)
                        .and_then(|rest| rest.split(' ').next())
                        .unwrap_or("?");
                    format!("{event} {attempt}")
                })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn make_dev_pages_users_answers_404s_and_gives_each_configured_origin_its_cors_answer() {
    let _turn = ONE_STACK_AT_A_TIME.lock().await;
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    fixture.seed_users(25).await;
    let stack = start_dev(&fixture).await;
    let port = stack.port;

    // dev.sh seeds its sample users into the same table.
    let in_table = fixture.count(&fixture.users_table).await;
    let mut ids = Vec::new();
    let mut path = "/users?limit=10".to_owned();
    loop {
        let (status, _, page) = http(port, "GET", &path, &[], "").await.expect("page");
        assert_eq!(status, 200, "{page}");
        ids.extend(
            page["users"]
                .as_array()
                .expect("users")
                .iter()
                .map(|u| u["id"].to_string()),
        );
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        path = format!("/users?limit=10&cursor={cursor}");
    }
    let pages = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((pages, ids.len()), (in_table, in_table), "every user once");

    let (status, _, missing) = http(port, "GET", "/nope", &[], "").await.expect("404");
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "not_found");
    assert_eq!(missing["error"]["message"], "No route for GET /nope");

    // Both origins of the comma-separated list reached the function intact.
    for origin in ORIGINS {
        let (status, head, _) = http(port, "GET", "/users?limit=1", &[("Origin", origin)], "")
            .await
            .expect("CORS request");
        assert_eq!(status, 200);
        assert!(
            head.contains(&format!("access-control-allow-origin: {origin}")),
            "{origin}: {head}"
        );
    }
    let (_, head, _) = http(
        port,
        "GET",
        "/users?limit=1",
        &[("Origin", "https://elsewhere.example.com")],
        "",
    )
    .await
    .expect("CORS request");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    drop(stack);
}

#[tokio::test(flavor = "multi_thread")]
async fn under_make_dev_async_answers_at_once_each_task_runs_one_attempt_at_a_time_and_a_failed_attempt_waits_queued_for_lambdas_retry()
 {
    let _turn = ONE_STACK_AT_A_TIME.lock().await;
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    let stack = start_dev(&fixture).await;

    // A 5 s task: the answer does not wait for it.
    let sent = Instant::now();
    let (status, _, started) = http(stack.port, "POST", "/async", &[], r#"{"delay_ms": 5000}"#)
        .await
        .expect("POST /async");
    let answered_in = sent.elapsed();
    assert_eq!(status, 202, "{started}");
    assert!(
        answered_in < Duration::from_secs(1),
        "POST /async answered in {answered_in:?}:\n{}",
        stack.tail()
    );
    let slow_task = started["task_id"].as_str().expect("task_id").to_owned();
    let (status, _, meanwhile) = http(stack.port, "GET", &format!("/tasks/{slow_task}"), &[], "")
        .await
        .expect("GET /tasks");
    assert_eq!(status, 200);
    assert!(
        matches!(meanwhile["status"].as_str(), Some("queued" | "running")),
        "the work is still going on: {meanwhile}"
    );

    // A task event whose first attempt fails, sent as Lambda would get it:
    // an Event invoke of the function (watch names it `_`).
    // Its record as /async leaves it once Lambda has accepted the event:
    // queued and marked enqueued (only then may a delivery claim it).
    let retried_task = uuid::Uuid::new_v4().to_string();
    let store = TaskStore {
        dynamodb: &fixture.dynamodb,
        table: &fixture.tasks_table,
    };
    store
        .put_enqueued(&retried_task)
        .await
        .expect("a queued, enqueued task record");
    let event = json!({"task_id": retried_task, "delay_ms": 0, "fail_attempts": 1}).to_string();
    let sent = Instant::now();
    let (status, head, body) = http(
        stack.lambda_port,
        "POST",
        "/2015-03-31/functions/_/invocations",
        &[("X-Amz-Invocation-Type", "Event")],
        &event,
    )
    .await
    .expect("Invoke (Event)");
    assert_eq!(
        (status, body),
        (202, Value::String(String::new())),
        "{head}"
    );
    assert!(sent.elapsed() < Duration::from_secs(1));

    let (slow, slow_readings) = follow(&stack, &slow_task).await;
    assert_eq!(
        (
            &slow["status"],
            &slow["attempts"],
            &slow["error"],
            &slow["result"]
        ),
        (
            &json!("succeeded"),
            &json!(1),
            &Value::Null,
            &json!({"waited_ms": 5000})
        ),
        "{slow}\n{}",
        stack.tail()
    );
    assert_final_is_final(&slow_readings, &stack);
    let (retried, retried_readings) = follow(&stack, &retried_task).await;
    assert_eq!(
        (
            &retried["status"],
            &retried["attempts"],
            &retried["error"],
            &retried["result"]
        ),
        (
            &json!("succeeded"),
            &json!(2),
            &Value::Null,
            &json!({"waited_ms": 0})
        ),
        "{retried}\n{}",
        stack.tail()
    );
    assert_final_is_final(&retried_readings, &stack);
    // Between the failed attempt and local-lambda's retry (6 s later) the
    // poller saw the task waiting `queued` with the attempt's error, told to
    // come back no sooner than Lambda's own retry (60 s, not scaled): never
    // `failed`, which would have been final.
    let error = json!("simulated failure (fail_attempts = 1)");
    let waiting = retried_readings
        .iter()
        .find(|r| r.status == "queued" && r.error == error)
        .unwrap_or_else(|| panic!("never seen waiting: {retried_readings:#?}"));
    assert_eq!(waiting.attempts, json!(1));
    assert!(
        waiting.retry_after.is_some_and(|s| (50..=60).contains(&s)),
        "{waiting:?}"
    );
    assert!(
        retried_readings.iter().all(|r| r.status != "failed"),
        "{retried_readings:#?}"
    );

    // Never two attempts of one task at once: each start is followed by its
    // own end before the next start. `Task completed` is logged just after
    // the record says `succeeded`: wait for the line too.
    let completed = |task_id: &str| {
        attempt_lines(&stack.lines(), task_id)
            .iter()
            .any(|line| line.starts_with("Task completed"))
    };
    let waited = Instant::now();
    while !(completed(&slow_task) && completed(&retried_task))
        && waited.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = stack.lines();
    assert_eq!(
        attempt_lines(&lines, &slow_task),
        ["task started 1", "Task completed 1"],
        "{}",
        stack.tail()
    );
    assert_eq!(
        attempt_lines(&lines, &retried_task),
        [
            "task started 1",
            "task attempt failed 1",
            "task started 2",
            "Task completed 2"
        ],
        "{}",
        stack.tail()
    );
    // local-lambda delivered the failed event again, and said so (its log
    // lines start with `local_lambda: `).
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("local_lambda: ") && line.contains("attempt 1 failed")),
        "{}",
        stack.tail()
    );
    drop(stack);
}
