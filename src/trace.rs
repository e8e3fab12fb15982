//! One X-Ray trace across the self-invocation: the trace header of the
//! invocation being served (Lambda's `Lambda-Runtime-Trace-Id`), kept per
//! invocation, and set as `X-Amzn-Trace-Id` on every call of the Lambda client
//! (the `Invoke` of a task), so the task's invocation joins the request's trace.
//!
//! Per invocation, not per process: with `AWS_LAMBDA_MAX_CONCURRENCY` one
//! process serves many invocations at once, so the process-wide
//! `_X_AMZN_TRACE_ID` (which the AWS SDK's recursion-detection interceptor
//! reads, and lambda_runtime sets only when it serves one invocation at a
//! time) may belong to another invocation or be missing. That interceptor
//! leaves a header already on the request alone, and [`TraceHeader`] replaces
//! any value, so the invocation's own header wins in either order.

use std::future::Future;

use aws_sdk_lambda::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_lambda::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_lambda::error::BoxError;

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

/// The Lambda client's interceptor that sets `X-Amzn-Trace-Id` to the trace
/// header of the invocation making the call.
#[derive(Debug)]
pub struct TraceHeader;

impl Intercept for TraceHeader {
    fn name(&self) -> &'static str {
        "TraceHeader"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(header) = header() {
            // A header Lambda gave us is valid; were it not, no header beats an error.
            let _ = context
                .request_mut()
                .headers_mut()
                .try_insert("x-amzn-trace-id", header);
        }
        Ok(())
    }
}
