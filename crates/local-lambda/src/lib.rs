//! Lambda on this machine, for a function binary of any language that speaks
//! the Runtime API: what `cargo lambda watch`, the Runtime Interface Emulator
//! and `sam local` do not do, Lambda's asynchronous invocation (an `Event`
//! answered 202 at once, then retried, aged, and sent to an on-failure
//! destination that hands it back in an SQS event).
//!
//! - [`async_invoke`]: that asynchronous invocation, against any [`Target`]
//!   that runs one synchronous invocation.
//! - [`runtime_api`]: a loopback Runtime API and Invoke API that runs the real
//!   binary as Lambda does, for tests ([`RuntimeApi`], [`FunctionCommand`]).
//! - [`http_target`]: a synchronous invoke endpoint over HTTP (`cargo lambda
//!   watch`, `sam local start-lambda`) as a [`Target`]: what the `local-lambda`
//!   binary delivers to.
//!
//! README.md says how to run the binary and use the library.
//!
//! [`Target`]: async_invoke::Target
//! [`RuntimeApi`]: runtime_api::RuntimeApi
//! [`FunctionCommand`]: runtime_api::FunctionCommand

pub mod async_invoke;
pub mod http_target;
pub mod runtime_api;

/// README.md's example, compiled by `cargo test --doc`.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
