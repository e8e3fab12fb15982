//! The Lambda function binary: logging, configuration and AWS clients once at
//! init, then the runtime loop.

use async_api::config::Config;
use async_api::{AppState, Function};
use lambda_http::Error;
use std::sync::Arc;

fn main() -> Result<(), Error> {
    keep_freed_heap();
    let runtime = runtime_loop::tokio_runtime()?;
    let function = runtime.block_on(init())?;
    // lambda_http's loop, built for speed in a package of its own
    // (crates/runtime-loop).
    runtime_loop::run(
        &runtime,
        Arc::new(move |request| {
            let function = Arc::clone(&function);
            Box::pin(async move { function.handle(request).await.map_err(Into::into) })
        }),
    )
}

async fn init() -> Result<Arc<Function>, Error> {
    // JSON when AWS_LAMBDA_LOG_FORMAT=JSON, text otherwise; every line of an
    // invocation sits in the runtime's span that carries its request id.
    runtime_loop::init_logs();

    let config = Config::from_env().inspect_err(|err| {
        tracing::error!(error = %err, "the function cannot start");
    })?;
    // Like the log subscriber, the metrics' destination is the process's.
    async_api::metrics::init(&config);
    let aws = async_api::load_aws_config().await;
    Ok(Arc::new(Function::new(AppState::new(config, &aws))))
}

/// glibc's malloc gives the top of its heap back to the kernel whenever more
/// than 128 KiB of it is free, and adapts that only after it frees a block it
/// had mapped on its own. A `/users` page's buffers fall just short of that, so
/// every warm page shrank the heap, grew it again and faulted its pages back in
/// (`brk` about once a request, 22 minor page faults per 1,000-item page
/// against the I/O floor's 2.5). Settled once: blocks up to 8 MiB (every
/// buffer a response within Lambda's 6 MB needs) come from the heap, and up to
/// 16 MiB of it freed is kept for the next invocation.
fn keep_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's parameters, under malloc's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}
