//! The Lambda function binary: logging, configuration and AWS clients once at
//! init, then the runtime loop.

use async_api::config::Config;
use async_api::{AppState, Function};
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON when AWS_LAMBDA_LOG_FORMAT=JSON, text otherwise; every line of an
    // invocation sits in the runtime's span that carries its request id.
    lambda_http::tracing::init_default_subscriber();

    let config = Config::from_env().inspect_err(|err| {
        tracing::error!(error = %err, "the function cannot start");
    })?;
    // Like the log subscriber, the metrics' destination is the process's.
    async_api::metrics::init(&config);
    let aws = async_api::load_aws_config().await;
    let function = Function::new(AppState::new(config, &aws));
    lambda_http::run_concurrent(service_fn(move |request| {
        let function = function.clone();
        async move { function.handle(request).await }
    }))
    .await
}
