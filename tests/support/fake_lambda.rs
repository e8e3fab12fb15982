//! A stand-in for the Lambda `Invoke` API on loopback: it records every
//! invocation and answers with the status it was started with. A test may
//! change that status, and delay the answer (of every later call, or of the
//! next few only: an event Lambda accepted whose answer the client lost),
//! while it runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;

/// One `Invoke` call as the fake received it.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub function_name: String,
    pub invocation_type: Option<String>,
    pub payload: Bytes,
}

/// How the fake answers, for every call from now on.
#[derive(Clone, Copy, Debug)]
struct Behaviour {
    status: StatusCode,
    /// How long after recording a call the fake answers it.
    delay: Duration,
    /// How many of the next calls are answered `late_delay` after instead.
    late_calls: usize,
    late_delay: Duration,
}

#[derive(Clone)]
struct Shared {
    behaviour: Arc<Mutex<Behaviour>>,
    invocations: Arc<Mutex<Vec<Invocation>>>,
}

/// The running fake; it stops with the test's runtime.
pub struct FakeLambda {
    pub url: String,
    shared: Shared,
}

impl FakeLambda {
    /// Starts on a port the OS picks and answers every `Invoke` with `status`
    /// (202 is what Lambda answers an accepted `Event` invocation).
    pub async fn start(status: u16) -> Self {
        let shared = Shared {
            behaviour: Arc::new(Mutex::new(Behaviour {
                status: StatusCode::from_u16(status).expect("status"),
                delay: Duration::ZERO,
                late_calls: 0,
                late_delay: Duration::ZERO,
            })),
            invocations: Arc::default(),
        };
        let router = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, shared }
    }

    /// Answers later calls with `status`: an error status comes with Lambda's
    /// error type for it (404 `ResourceNotFoundException`, 429
    /// `TooManyRequestsException`, any other `ServiceException`).
    pub fn set_status(&self, status: u16) {
        self.shared.behaviour.lock().expect("lock").status =
            StatusCode::from_u16(status).expect("status");
    }

    /// Answers later calls `delay` after recording them: the event is
    /// accepted, and a client that gives up first loses the answer.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.behaviour.lock().expect("lock").delay = delay;
    }

    /// Answers the next `calls` calls `delay` after recording them, and later
    /// ones as before: Lambda accepts each of those events, and a client whose
    /// attempt timeout is shorter loses the answer (the SDK then tries again).
    pub fn answer_late(&self, calls: usize, delay: Duration) {
        let mut behaviour = self.shared.behaviour.lock().expect("lock");
        behaviour.late_calls = calls;
        behaviour.late_delay = delay;
    }

    /// Every invocation received so far.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.shared.invocations.lock().expect("lock").clone()
    }
}

/// Lambda's error type, and a message like its own, for an error status.
fn lambda_error(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        404 => (
            "ResourceNotFoundException",
            r#"{"Type":"User","message":"Function not found: arn:aws:lambda:us-east-1:123456789012:function:async-api-test"}"#,
        ),
        429 => (
            "TooManyRequestsException",
            r#"{"Type":"User","message":"Rate Exceeded.","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}"#,
        ),
        _ => (
            "ServiceException",
            r#"{"Type":"Service","message":"fake failure"}"#,
        ),
    }
}

async fn invoke(
    State(shared): State<Shared>,
    Path(function_name): Path<String>,
    headers: HeaderMap,
    payload: Bytes,
) -> impl IntoResponse {
    shared.invocations.lock().expect("lock").push(Invocation {
        function_name,
        invocation_type: headers
            .get("x-amz-invocation-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        payload,
    });
    let behaviour = {
        let mut behaviour = shared.behaviour.lock().expect("lock");
        let now = *behaviour;
        if behaviour.late_calls > 0 {
            behaviour.late_calls -= 1;
            Behaviour {
                delay: behaviour.late_delay,
                ..now
            }
        } else {
            now
        }
    };
    tokio::time::sleep(behaviour.delay).await;
    if behaviour.status.is_success() {
        (
            behaviour.status,
            [("x-amzn-requestid", "fake-request")],
            String::new(),
        )
            .into_response()
    } else {
        let (error_type, body) = lambda_error(behaviour.status);
        (
            behaviour.status,
            [("x-amzn-errortype", error_type)],
            body.to_owned(),
        )
            .into_response()
    }
}
