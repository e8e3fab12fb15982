//! The I/O floor of `make bench`: the least CPU a Rust Lambda function can
//! spend to answer `GET /users` with a page of the users table.
//!
//! It loads the AWS configuration and builds the DynamoDB client once, with
//! the function's own HTTPS client, then answers every event, whatever it
//! asks, with one Scan page of `USERS_TABLE` (`SCAN_LIMIT` items, 100 by
//! default), the Scan's answer read as DynamoDB sent it straight into one
//! buffer by the function's own reader (crates/item-json: no item built in
//! between, its checks of DynamoDB's format included), the same page as the
//! function's, `next_cursor` included: no routing, no request validation, no
//! cursor read, no size budget, no metrics, and no UTF-8
//! check of its own (the body goes to lambda_http as bytes: its JSON content
//! type makes lambda_http check it and write it as text, as it does for the
//! function). The distance between it and the function is what the
//! function's own code and build cost.
//!
//! It is a package of its own so that it is built for speed whatever the
//! function's profile: `cargo build --profile floor -p floor-io` (the root
//! `Cargo.toml`'s `[profile.floor]`: fat LTO, one codegen unit, opt-level 3
//! for every crate). `benches/bench/` drives it.

use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use item_json::{KeepAnswer, ScanAnswer};
use lambda_http::{Body, Error, Request, Response, service_fn};

fn main() -> Result<(), Error> {
    // The heap's thresholds as the function sets them (its `keep_freed_heap`):
    // neither pays for page faults the other is spared.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's parameters, under malloc's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
    // The function's runtime: one thread unless Lambda sends several events at once.
    runtime_loop::tokio_runtime()?.block_on(serve())
}

async fn serve() -> Result<(), Error> {
    runtime_loop::init_logs();
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
        let kept = KeepAnswer::default();
        let scan = dynamodb
            .scan()
            .table_name(&table)
            .limit(limit)
            .customize()
            .interceptor(kept.clone())
            .send();
        async move {
            scan.await?;
            let answer = kept.take().ok_or("no answer")?;
            let json = answer.bytes().ok_or("no answer")?;
            let mut answer = ScanAnswer::new(json, "id")?;
            let mut body = Vec::with_capacity(json.len() + 64);
            body.extend_from_slice(b"{\"users\":[");
            let mut first = true;
            let mut last_key = None;
            loop {
                let before = body.len();
                if !first {
                    body.push(b',');
                }
                let Some(item) = answer.next_item(&mut body)? else {
                    body.truncate(before);
                    break;
                };
                last_key = item.key;
                first = false;
            }
            // The page's cursor, as the function makes it: the last item's
            // key as `{"id":"…"}` in unpadded base64url; `null` on the last page.
            body.extend_from_slice(b"],\"next_cursor\":");
            match (answer.last_evaluated_key()?, last_key) {
                (Some(_), Some(key)) => {
                    let cursor = [&b"{\"id\":"[..], key, b"}"].concat();
                    body.push(b'"');
                    body.extend_from_slice(URL_SAFE_NO_PAD.encode(cursor).as_bytes());
                    body.extend_from_slice(b"\"}");
                }
                _ => body.extend_from_slice(b"null}"),
            }
            Ok::<_, Error>(
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::Binary(body))?,
            )
        }
    }))
    .await
}
