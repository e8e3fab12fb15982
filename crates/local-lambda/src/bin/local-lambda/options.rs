//! The command line (and the environment variables that stand in for its
//! flags): `--help`'s text and what it asks for.

use std::time::Duration;

use local_lambda::async_invoke::{Account, Policy};
use local_lambda::http_target::Endpoint;

pub const USAGE: &str = "\
local-lambda: Lambda's Invoke API with asynchronous (Event) semantics, in front of a
synchronous invoke endpoint (cargo lambda watch, sam local start-lambda).

Options (each also read from the environment variable named in brackets):
  --address IP               where to listen [LOCAL_LAMBDA_ADDRESS] (default 127.0.0.1)
  --port N                   where to listen, 0 = any free port [LOCAL_LAMBDA_PORT] (default 0)
  --target URL               the synchronous invoke endpoint [LOCAL_LAMBDA_TARGET]
                             (default http://127.0.0.1:9000, cargo lambda watch)
  --target-function NAME     invoke NAME at the target, whatever name the caller used
  --function-name NAME       accept invocations of NAME only (others: 404, as Lambda)
  --function-timeout-ms N    the function's timeout; Lambda's delays scale with it
                             [LOCAL_LAMBDA_FUNCTION_TIMEOUT_MS] (default 90000: retries
                             after 60 s and 120 s, events expire after 3600 s)
  --max-retries N            0 to 2 (default 2)
  --max-event-age-ms N       override the scaled maximum event age
  --max-parallel N           deliveries in flight at once (default 4)
  --max-receive-count N      receives of a destination message before it is given up
                             (default 10, the failure queue's maxReceiveCount)
  --grace-ms N               on top of the timeout, for a cold start or a rebuild of the
                             target (default 10000)
  --region R, --account-id A, --queue-name Q   for the ARNs of the records
";

/// What the command line and environment ask for.
pub struct Options {
    pub address: String,
    pub port: u16,
    pub target: Endpoint,
    pub target_function: Option<String>,
    pub function_name: Option<String>,
    pub policy: Policy,
    pub grace: Duration,
    pub account: Account,
}

/// The options, or the text to print: the usage (for `--help`) or what is wrong.
pub fn parse_options(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut address = env("LOCAL_LAMBDA_ADDRESS").unwrap_or_else(|| "127.0.0.1".to_owned());
    let mut port = env("LOCAL_LAMBDA_PORT").unwrap_or_else(|| "0".to_owned());
    let mut target =
        env("LOCAL_LAMBDA_TARGET").unwrap_or_else(|| "http://127.0.0.1:9000".to_owned());
    let mut timeout_ms =
        env("LOCAL_LAMBDA_FUNCTION_TIMEOUT_MS").unwrap_or_else(|| "90000".to_owned());
    let mut values: std::collections::HashMap<String, String> = Default::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Err(USAGE.to_owned());
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let known = [
            "--address",
            "--port",
            "--target",
            "--target-function",
            "--function-name",
            "--function-timeout-ms",
            "--max-retries",
            "--max-event-age-ms",
            "--max-parallel",
            "--max-receive-count",
            "--grace-ms",
            "--region",
            "--account-id",
            "--queue-name",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown argument {arg:?}\n\n{USAGE}"));
        }
        let value = match inline {
            Some(value) => value,
            None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
        };
        match flag.as_str() {
            "--address" => address = value,
            "--port" => port = value,
            "--target" => target = value,
            "--function-timeout-ms" => timeout_ms = value,
            _ => {
                values.insert(flag, value);
            }
        }
    }
    let number = |flag: &str, text: &str| -> Result<u64, String> {
        text.parse()
            .map_err(|_| format!("{flag} must be a whole number, not {text:?}"))
    };
    let timeout_ms = number("--function-timeout-ms", &timeout_ms)?;
    if timeout_ms == 0 {
        return Err("--function-timeout-ms must be at least 1".to_owned());
    }
    let mut policy = Policy::scaled(Duration::from_millis(timeout_ms));
    policy.max_parallel = 4;
    if let Some(retries) = values.get("--max-retries") {
        let retries = number("--max-retries", retries)?;
        if retries > 2 {
            return Err("--max-retries is 0, 1 or 2, as in Lambda".to_owned());
        }
        policy.retry_delays.truncate(retries as usize);
    }
    if let Some(age) = values.get("--max-event-age-ms") {
        policy.max_event_age = Duration::from_millis(number("--max-event-age-ms", age)?);
    }
    if let Some(parallel) = values.get("--max-parallel") {
        policy.max_parallel = number("--max-parallel", parallel)?.max(1) as usize;
    }
    if let Some(count) = values.get("--max-receive-count") {
        policy.max_receive_count = number("--max-receive-count", count)?.max(1) as u32;
    }
    let grace = match values.get("--grace-ms") {
        Some(grace) => Duration::from_millis(number("--grace-ms", grace)?),
        None => Duration::from_secs(10),
    };
    let mut account = Account::default();
    if let Some(region) = env("AWS_REGION") {
        account.region = region;
    }
    for (flag, field) in [
        ("--region", &mut account.region),
        ("--account-id", &mut account.account_id),
        ("--queue-name", &mut account.queue_name),
    ] {
        if let Some(value) = values.get(flag) {
            *field = value.clone();
        }
    }
    Ok(Options {
        address,
        port: number("--port", &port)?
            .try_into()
            .map_err(|_| "--port is at most 65535".to_owned())?,
        target: Endpoint::parse(&target)?,
        target_function: values.get("--target-function").cloned(),
        function_name: values.get("--function-name").cloned(),
        policy,
        grace,
        account,
    })
}
