//! `AppState`: the configuration and the AWS clients, built once at init and
//! shared by every handler (axum's `State`) and by the task worker.
//!
//! Every AWS call is bounded here, once for both clients, so that a slow or
//! hung dependency turns into a 503 well inside API Gateway's 30 s limit.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use crate::config::Config;
use crate::trace;

/// What every handler shares: the configuration and the AWS clients, built
/// once at init.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The environment, read once; shared, so that the state axum hands each
    /// request is a few reference counts, not a copy of every setting.
    pub config: Arc<Config>,
    /// Reads the users table, owns the tasks table.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Enqueues the task events (this function invoking itself).
    pub lambda: aws_sdk_lambda::Client,
}

impl AppState {
    /// Builds the AWS clients once, from the shared AWS configuration.
    pub fn new(config: Config, aws: &SdkConfig) -> Self {
        Self {
            config: Arc::new(config),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb_config(aws).build()),
            lambda: aws_sdk_lambda::Client::from_conf(lambda_config(aws).build()),
        }
    }
}

/// Bounds on every AWS call. Each must end well inside API Gateway's 30 s
/// integration timeout, so a slow or hung dependency answers 503 rather than a
/// gateway timeout: 1 s to connect, 2 s per attempt, 3 attempts with jittered
/// backoff, 6 s in all. DynamoDB answers in milliseconds when healthy, and an
/// `Event` invoke only enqueues.
fn call_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(6))
        .build()
}

fn call_retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// The HTTPS client of every AWS call: the SDK's own (hyper 1, rustls) with
/// ring as the crypto provider, where the SDK's default feature would bring
/// aws-lc-rs and a larger binary (see Cargo.toml).
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The shared AWS configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL_*`), its credential providers calling through
/// [`https_client`].
pub async fn load_aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// DynamoDB client settings: the shared AWS configuration within the call bounds.
pub fn dynamodb_config(aws: &SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(aws)
        .timeout_config(call_timeouts())
        .retry_config(call_retries())
}

/// Lambda client settings (the self-invocation), within the same bounds, each
/// call carrying the trace header of the invocation that makes it.
pub fn lambda_config(aws: &SdkConfig) -> aws_sdk_lambda::config::Builder {
    aws_sdk_lambda::config::Builder::from(aws)
        .timeout_config(call_timeouts())
        .retry_config(call_retries())
        // The task's invocation joins the trace of the request that starts it.
        .interceptor(trace::TraceHeader)
}
