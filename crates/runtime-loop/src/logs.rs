//! The log lines of a function on this loop: JSON when Lambda's log format
//! is JSON (`AWS_LAMBDA_LOG_FORMAT`), text otherwise, each in the runtime's
//! span that carries the invocation's request id; at `AWS_LAMBDA_LOG_LEVEL`
//! (else a level in `RUST_LOG`, else INFO), with `RUST_LOG`'s per-crate
//! directives (`aws_smithy_runtime=debug,info`).
//!
//! The lines and levels of lambda_http's `init_default_subscriber`, filtered
//! by target as tracing-subscriber's `Targets` does rather than by its
//! `EnvFilter`, whose span and field directives (`[span{field=value}]`) need a
//! regex engine in the binary: 150 KB of the zipped arm64 bootstrap (the root
//! Cargo.toml). A `RUST_LOG` that `Targets` cannot read (one with span or
//! field directives) is ignored, as a malformed one is.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the process's log subscriber, once, before anything logs.
pub fn init_logs() {
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let rust_log = std::env::var("RUST_LOG").ok();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let filter = filter(lambda_level.as_deref(), rust_log.as_deref());
    let lines = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    let registry = tracing_subscriber::registry().with(filter);
    // A second subscriber (a test's) is left in place.
    let _ = if json {
        registry.with(lines.json()).try_init()
    } else {
        registry.with(lines).try_init()
    };
}

/// The filter of `AWS_LAMBDA_LOG_LEVEL` and `RUST_LOG`: Lambda's level is the
/// default for every crate, `RUST_LOG`'s directives name their own.
fn filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> Targets {
    let directives = rust_log
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_default();
    let level = lambda_level
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .or(directives.default_level())
        .unwrap_or(LevelFilter::INFO);
    directives.with_default(level)
}

#[cfg(test)]
mod tests {
    use super::filter;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn lambdas_level_is_every_crates_and_rust_log_names_its_own() {
        let filter = filter(Some("WARN"), Some("aws_smithy_runtime=debug,info"));
        assert_eq!(filter.default_level(), Some(LevelFilter::WARN));
        assert!(filter.would_enable("aws_smithy_runtime::client", &tracing::Level::DEBUG));
        assert!(!filter.would_enable("async_api::users", &tracing::Level::INFO));
    }

    #[test]
    fn without_lambdas_level_rust_logs_level_holds_then_info() {
        assert_eq!(
            filter(None, Some("debug")).default_level(),
            Some(LevelFilter::DEBUG)
        );
        assert_eq!(filter(None, None).default_level(), Some(LevelFilter::INFO));
        assert_eq!(
            filter(Some("loud"), Some("not a directive[")).default_level(),
            Some(LevelFilter::INFO)
        );
    }
}
