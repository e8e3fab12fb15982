//! Why a read or write of a task record failed, as an HTTP answer (503 or 500, as
//! [`ApiError::from_sdk`] says) or as one line of a task's function error.

use super::*;

/// Why a read or write of a task record failed.
#[derive(Debug)]
pub enum StoreError<E> {
    /// The call failed.
    Sdk(Box<SdkError<E>>),
    /// The item is not a task record this function wrote.
    Record(String),
}

impl<E: ProvideErrorMetadata> StoreError<E> {
    /// As an HTTP answer: 503 or 500 as [`ApiError::from_sdk`] says, 500 for
    /// an unreadable record.
    pub fn into_api_error(self, operation: &str) -> ApiError {
        match self {
            Self::Sdk(err) => ApiError::from_sdk(operation, &err),
            Self::Record(message) => ApiError::Internal(message),
        }
    }

    /// As one line for a task's function error.
    pub fn summary(&self, operation: &str) -> String {
        match self {
            Self::Sdk(err) => format!("{operation}: {}", sdk_summary(err)),
            Self::Record(message) => message.clone(),
        }
    }
}
