//! The size of the arm64 `bootstrap` that `cargo lambda build` made.

use super::*;

/// The zip's size, and the uncompressed size of its `bootstrap`.
pub(crate) struct Bootstrap {
    pub(crate) zipped: u64,
    pub(crate) raw: u64,
}

pub(crate) fn bootstrap(zip: &Path) -> Option<Bootstrap> {
    let bytes = std::fs::read(zip).ok()?;
    let u16_at = |at: usize| -> Option<usize> {
        Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?) as usize)
    };
    let u32_at = |at: usize| -> Option<u64> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as u64)
    };
    // The central directory's entry for `bootstrap` holds its uncompressed size.
    let raw = (0..bytes.len().saturating_sub(46))
        .filter(|&at| bytes[at..].starts_with(b"PK\x01\x02"))
        .find(|&at| {
            u16_at(at + 28)
                .is_some_and(|len| bytes.get(at + 46..at + 46 + len) == Some(b"bootstrap"))
        })
        .and_then(|at| u32_at(at + 24))?;
    Some(Bootstrap {
        zipped: bytes.len() as u64,
        raw,
    })
}
