//! A stand-in for the Lambda `Invoke` API on loopback: it records every
//! invocation and answers with the status it was started with.

use std::sync::{Arc, Mutex};

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

#[derive(Clone)]
struct Shared {
    status: StatusCode,
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
            status: StatusCode::from_u16(status).expect("status"),
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

    /// Every invocation received so far.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.shared.invocations.lock().expect("lock").clone()
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
    if shared.status.is_success() {
        (
            shared.status,
            [("x-amzn-requestid", "fake-request")],
            String::new(),
        )
    } else {
        (
            shared.status,
            [("x-amzn-errortype", "ServiceException")],
            r#"{"Type":"Service","message":"fake failure"}"#.to_owned(),
        )
    }
}
