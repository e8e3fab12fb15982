//! The runtime floor for `make bench`: a lambda_http hello-world. It answers
//! every HTTP event with the same small JSON body, so its cold start and
//! latency are what the Lambda runtime alone costs (the Runtime API round
//! trip, lambda_http's event parsing and response building), with nothing of
//! the function's own. Built with the same profile and features as the
//! function binary; `benches/bench/` drives it.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // As the function does: its log subscriber.
    runtime_loop::init_logs();
    lambda_http::run_concurrent(service_fn(hello)).await
}

async fn hello(_request: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::Text(r#"{"message":"hello"}"#.to_owned()))?)
}
