//! `local-lambda`: Lambda's `Invoke` API on this machine, with Lambda's
//! asynchronous semantics, in front of a local function runner that serves
//! only synchronous invocations: `cargo lambda watch` or `sam local
//! start-lambda`. Both answer an `Event` invocation only once the function is
//! done, so a function that enqueues work for itself would wait for that work,
//! where in Lambda it answers at once.
//!
//! Point the function's `AWS_ENDPOINT_URL_LAMBDA` here. Then:
//! - `POST /2015-03-31/functions/{name}/invocations` with
//!   `X-Amz-Invocation-Type: Event` answers 202 at once, with no body, as
//!   Lambda does; the event is queued and delivered in the background to the
//!   target as a synchronous (`RequestResponse`) invocation. A delivery fails
//!   when the target reports a function error (`X-Amz-Function-Error`, or
//!   watch's 5xx with Lambda's error body), cannot be reached, or takes longer
//!   than the function timeout plus `--grace-ms`. A failed event is delivered
//!   again with the same payload (and the same request id, as the
//!   `lambda-runtime-aws-request-id` header, which watch and SAM do not pass
//!   on: the function sees an id of theirs) after Lambda's delays, at most
//!   twice, and never past the maximum event age; then the function gets the
//!   on-failure destination's record in an SQS event, as an event source
//!   mapping with `ReportBatchItemFailures` delivers it.
//!   [`local_lambda::async_invoke`] holds that logic, shared with the Runtime
//!   API emulator, and says how time scales with `--function-timeout-ms`.
//! - `RequestResponse` (the default) is passed to the target and its answer
//!   back, a function error in Lambda's form (200 with `X-Amz-Function-Error`);
//!   `DryRun` answers 204.
//!
//! Usage (every flag optional; `--help` lists them):
//!
//! ```text
//! cargo run -p local-lambda -- --target http://127.0.0.1:9000 --port 9001
//! ```
//!
//! The first line on stdout is the port it listens on (useful with `--port 0`,
//! where the OS picks one); then one line per delivery, retry and destination
//! step on stderr, each starting with `local_lambda: `. Ctrl-C or SIGTERM stops
//! it; events not yet delivered are lost, and said so.

mod options;
mod server;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use local_lambda::async_invoke::AsyncInvoker;
use local_lambda::http_target::HttpTarget;
use options::{USAGE, parse_options};
use server::{App, log, router};

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated => {}
    }
}

#[tokio::main]
async fn main() {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(if message == USAGE { 0 } else { 2 });
        }
    };
    let address: SocketAddr = match format!("{}:{}", options.address, options.port).parse() {
        Ok(address) => address,
        Err(_) => {
            eprintln!("--address must be an IP address, not {:?}", options.address);
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("local_lambda: cannot listen on {address}: {err}");
            std::process::exit(1);
        }
    };
    let bound = listener.local_addr().expect("the listener's address");
    println!("{}", bound.port());
    // The caller reads the port before anything else.
    let _ = std::io::stdout().flush();

    let target = Arc::new(HttpTarget {
        endpoint: options.target.clone(),
        target_function: options.target_function.clone(),
        grace: options.grace,
    });
    let policy = options.policy.clone();
    let invoker = AsyncInvoker::new(options.policy, options.account.clone(), target.clone(), log);
    log(format!(
        "Invoke API on http://{bound}, delivering to {} (function timeout {:.1}s: retries after {}; events expire after {:.0}s; {} in parallel)",
        options.target,
        policy.function_timeout.as_secs_f64(),
        if policy.retry_delays.is_empty() {
            "none".to_owned()
        } else {
            policy
                .retry_delays
                .iter()
                .map(|d| format!("{:.1}s", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" and ")
        },
        policy.max_event_age.as_secs_f64(),
        policy.max_parallel,
    ));
    let app = Arc::new(App {
        invoker: invoker.clone(),
        target,
        function_name: options.function_name,
        account: options.account,
    });
    let server = axum::serve(listener, router(app));
    tokio::select! {
        result = server => {
            if let Err(err) = result {
                log(format!("server error: {err}"));
            }
        }
        () = shutdown_signal() => {}
    }
    let abandoned = invoker.shutdown();
    if abandoned.is_empty() {
        log("stopped".to_owned());
    } else {
        let ids: Vec<&str> = abandoned.iter().map(|r| r.request_id.as_str()).collect();
        log(format!(
            "stopped; {} event(s) not delivered to the end: {}",
            ids.len(),
            ids.join(", ")
        ));
    }
}
