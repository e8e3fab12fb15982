//! End to end through `cargo lambda watch`, as `make dev` runs the API: the
//! real binary, a real HTTP server, and `/async` really invoking the function
//! again through watch's Lambda API.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Fixture;

/// `cargo lambda watch` in its own process group, stopped with everything it
/// started when the test ends, pass or fail.
struct Watch {
    child: Child,
    port: u16,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn cargo_lambda() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/cargo-lambda");
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("cargo-lambda"))
        .find(|candidate| candidate.exists());
    on_path.expect("cargo-lambda is not installed: run `make test`, which installs it into .venv")
}

fn start_watch(fixture: &Fixture) -> Watch {
    use std::os::unix::process::CommandExt;
    let port: u16 = support::dead_endpoint()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let child = Command::new(cargo_lambda())
        .args(["lambda", "watch", "--quiet", "--ignore-changes", "--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &port.to_string(), "--concurrency", "2"])
        .arg("--env-var")
        .arg(format!(
            "USERS_TABLE={},TASKS_TABLE={},AWS_ENDPOINT_URL_DYNAMODB={},AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:{port}",
            fixture.users_table,
            fixture.tasks_table,
            support::dynamodb_endpoint()
        ))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start cargo lambda watch");
    Watch { child, port }
}

/// One HTTP/1.1 request to watch; returns (status, body).
fn request(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((
        status,
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

#[tokio::test(flavor = "multi_thread")]
async fn the_api_served_by_cargo_lambda_watch_pages_users_and_runs_a_task_to_succeeded() {
    let fixture = Fixture::new(&support::dead_endpoint()).await;
    fixture.seed_users(25).await;
    let watch = start_watch(&fixture);
    let port = watch.port;

    tokio::task::spawn_blocking(move || {
        // watch compiles the function on the first request: wait for it.
        let started = Instant::now();
        let first = loop {
            match request(port, "GET", "/users?limit=10", "") {
                Ok(reply) if reply.0 != 0 => break reply,
                _ if started.elapsed() > Duration::from_secs(300) => panic!("watch never answered"),
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        };
        assert_eq!(first.0, 200, "{}", first.1);

        let mut ids = Vec::new();
        let mut page = first.1;
        loop {
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
            let (status, next) =
                request(port, "GET", &format!("/users?limit=10&cursor={cursor}"), "")
                    .expect("page");
            assert_eq!(status, 200);
            page = next;
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 25, "every seeded user once");

        let (status, started) =
            request(port, "POST", "/async", r#"{"delay_ms": 200}"#).expect("async");
        assert_eq!(status, 202, "{started}");
        assert_eq!(started["message"], "Task started");
        let status_url = started["status_url"]
            .as_str()
            .expect("status_url")
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        let task = loop {
            let (status, task) = request(port, "GET", &status_url, "").expect("task");
            assert_eq!(status, 200, "{task}");
            if task["status"] == "succeeded" || Instant::now() > deadline {
                break task;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(task["status"], "succeeded", "{task}");
        assert_eq!(task["attempts"], 1);

        let (status, missing) = request(port, "GET", "/nope", "").expect("404");
        assert_eq!(status, 404);
        assert_eq!(missing["error"]["code"], "not_found");
        assert_eq!(missing["error"]["message"], "No route for GET /nope");
    })
    .await
    .expect("end-to-end run");
    drop(watch);
}
