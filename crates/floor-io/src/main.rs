//! The I/O floor of `make bench`: the least CPU a Rust Lambda function can
//! spend to answer `GET /users` with a page of the users table.
//!
//! It loads the AWS configuration and builds the DynamoDB client once, with
//! the function's own HTTPS client, then answers every event, whatever it
//! asks, with one Scan page of `USERS_TABLE` (`SCAN_LIMIT` items, 100 by
//! default) written straight into one `String`: no routing, no validation, no
//! cursor, no size budget, no attribute order, no number rewritten, no UTF-8
//! check (every byte comes from a `&str`). The distance between it and the
//! function is what the function's own code and build cost.
//!
//! It is a package of its own so that it is built for speed whatever the
//! function's profile: `cargo build --profile floor -p floor-io` (the root
//! `Cargo.toml`'s `[profile.floor]`: fat LTO, one codegen unit, opt-level 3
//! for every crate). `benches/bench/` drives it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The heap's thresholds as the function sets them (its `keep_freed_heap`):
    // neither pays for page faults the other is spared.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's parameters, under malloc's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
    lambda_http::tracing::init_default_subscriber();
    let table = std::env::var("USERS_TABLE")?;
    let limit: i32 = std::env::var("SCAN_LIMIT").map_or(Ok(100), |limit| limit.parse())?;
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https)
        .load()
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    lambda_http::run_concurrent(service_fn(move |_request: Request| {
        let scan = dynamodb.scan().table_name(&table).limit(limit).send();
        async move {
            let output = scan.await?;
            let items = output.items();
            let mut body = String::with_capacity(64 * 1024);
            body.push_str("{\"users\":[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    body.push(',');
                }
                push_item(&mut body, item);
            }
            body.push_str("]}");
            Ok::<_, Error>(
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::Text(body))?,
            )
        }
    }))
    .await
}

/// An item (or an M value) as a JSON object, attributes as the map holds them.
fn push_item(out: &mut String, item: &HashMap<String, AttributeValue>) {
    out.push('{');
    for (index, (name, value)) in item.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_str(out, name);
        out.push(':');
        push_value(out, value);
    }
    out.push('}');
}

/// One attribute value as plain JSON; a DynamoDB number as DynamoDB sent it.
fn push_value(out: &mut String, value: &AttributeValue) {
    match value {
        AttributeValue::S(s) => push_str(out, s),
        AttributeValue::N(n) => out.push_str(n),
        AttributeValue::Bool(true) => out.push_str("true"),
        AttributeValue::Bool(false) => out.push_str("false"),
        AttributeValue::M(map) => push_item(out, map),
        AttributeValue::L(list) => push_list(out, list, push_value),
        AttributeValue::Ss(strings) => push_list(out, strings, |out, s| push_str(out, s)),
        AttributeValue::Ns(numbers) => push_list(out, numbers, |out, n| out.push_str(n)),
        AttributeValue::B(blob) => push_base64(out, blob.as_ref()),
        AttributeValue::Bs(blobs) => push_list(out, blobs, |out, b| push_base64(out, b.as_ref())),
        _ => out.push_str("null"),
    }
}

fn push_list<T>(out: &mut String, list: &[T], mut push: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (index, value) in list.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push(out, value);
    }
    out.push(']');
}

fn push_base64(out: &mut String, bytes: &[u8]) {
    out.push('"');
    STANDARD.encode_string(bytes, out);
    out.push('"');
}

/// A JSON string: runs with nothing to escape are copied whole.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (at, &byte) in s.as_bytes().iter().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..at]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xf)] as char);
        } else {
            out.push_str(escape);
        }
        start = at + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}
