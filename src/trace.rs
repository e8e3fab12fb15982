//! One X-Ray trace across the self-invocation: the trace header of the
//! invocation being served (Lambda's `Lambda-Runtime-Trace-Id`), kept per
//! invocation, for the `Invoke` of a task to carry on as `X-Amzn-Trace-Id`.
//!
//! Per invocation, not per process: with `AWS_LAMBDA_MAX_CONCURRENCY` one
//! process serves many invocations at once, so the process-wide
//! `_X_AMZN_TRACE_ID` (which the AWS SDK's recursion-detection interceptor
//! reads, and lambda_runtime sets only when it serves one invocation at a
//! time) may belong to another invocation or be missing. That interceptor
//! leaves a header already on the request alone, and [`onto_request`] replaces
//! any value, so the invocation's own header wins either way.

use std::future::Future;

use aws_sdk_lambda::config::http::HttpRequest;

tokio::task_local! {
    static TRACE_HEADER: Option<String>;
}

/// Runs `serve` with `header` as the trace header of the invocation it serves.
pub async fn scope<F: Future>(header: Option<String>, serve: F) -> F::Output {
    TRACE_HEADER.scope(header, serve).await
}

/// The trace header of the invocation being served, if Lambda gave it one.
pub fn header() -> Option<String> {
    TRACE_HEADER.try_with(Clone::clone).ok().flatten()
}

/// For an AWS call's `.customize().mutate_request(...)`: sets `X-Amzn-Trace-Id`
/// to the trace header of the invocation making the call.
pub fn onto_request() -> impl Fn(&mut HttpRequest) + Send + Sync + 'static {
    let header = header();
    move |request: &mut HttpRequest| {
        if let Some(header) = &header {
            // A header Lambda gave us is valid; were it not, no header beats a panic.
            let _ = request
                .headers_mut()
                .try_insert("x-amzn-trace-id", header.clone());
        }
    }
}
