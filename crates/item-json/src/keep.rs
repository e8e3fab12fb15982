//! A Scan's answer taken from the SDK as its bytes, in place of its parse.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use aws_sdk_dynamodb::config::RuntimePlugin;
use aws_sdk_dynamodb::operation::scan::{Scan, ScanOutput};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, Error, Output,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::ser_de::{DeserializeResponse, SharedResponseDeserializer};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, FrozenLayer};

/// An interceptor for one Scan call that keeps its successful answer's body
/// for [`ScanAnswer`](crate::ScanAnswer) and gives the SDK an empty
/// `ScanOutput` in its place: the SDK still signs, sends, retries, times out
/// and parses errors as it always does, and only the items are not built.
///
/// ```ignore
/// let kept = KeepAnswer::default();
/// client.scan().table_name(table).customize().interceptor(kept.clone()).send().await?;
/// let body = kept.take().expect("a successful Scan's answer");
/// ```
#[derive(Debug, Clone, Default)]
pub struct KeepAnswer(Arc<Mutex<Option<SdkBody>>>);

impl KeepAnswer {
    /// The body of the call's successful answer (its bytes in memory).
    pub fn take(&self) -> Option<SdkBody> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Intercept for KeepAnswer {
    fn name(&self) -> &'static str {
        "KeepAnswer"
    }

    /// Once per call, before its first try: this deserializer in place of
    /// the operation's.
    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let parse = scan_deserializer().ok_or("Scan has no response deserializer")?;
        let keep = Keep {
            parse,
            body: Arc::clone(&self.0),
        };
        cfg.interceptor_state()
            .store_put(SharedResponseDeserializer::new(keep));
        Ok(())
    }
}

/// The Scan operation's own deserializer, from its runtime plugin (built
/// once): what parses the answers that are errors.
fn scan_deserializer() -> Option<&'static SharedResponseDeserializer> {
    static SCAN: OnceLock<Option<FrozenLayer>> = OnceLock::new();
    SCAN.get_or_init(|| Scan::new().config())
        .as_ref()
        .and_then(|layer| layer.load::<SharedResponseDeserializer>())
}

#[derive(Debug)]
struct Keep {
    parse: &'static SharedResponseDeserializer,
    body: Arc<Mutex<Option<SdkBody>>>,
}

impl DeserializeResponse for Keep {
    fn deserialize_streaming_with_config(
        &self,
        response: &mut HttpResponse,
        cfg: &ConfigBag,
    ) -> Option<Result<Output, OrchestratorError<Error>>> {
        self.parse.deserialize_streaming_with_config(response, cfg)
    }

    /// A success's body is kept (a reference to the bytes the SDK read, not
    /// a copy); an error is the SDK's to parse, so that its retries and
    /// error types are unchanged.
    fn deserialize_nonstreaming_with_config(
        &self,
        response: &HttpResponse,
        cfg: &ConfigBag,
    ) -> Result<Output, OrchestratorError<Error>> {
        if !response.status().is_success() {
            return self
                .parse
                .deserialize_nonstreaming_with_config(response, cfg);
        }
        let body = response
            .body()
            .try_clone()
            .filter(|body| body.bytes().is_some())
            .ok_or_else(|| OrchestratorError::other("the answer's body is not in memory"))?;
        *self.body.lock().unwrap_or_else(PoisonError::into_inner) = Some(body);
        Ok(Output::erase(ScanOutput::builder().build()))
    }
}
