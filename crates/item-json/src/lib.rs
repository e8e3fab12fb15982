//! A DynamoDB item as plain JSON, the way the function's `GET /users` shows it: S string, N a
//! JSON number with every digit DynamoDB stored (never through an `f64`),
//! BOOL, NULL, M object, L array, SS/NS arrays, B/BS base64 strings.
//!
//! [`ItemJson`] is a view: it borrows the SDK's values and writes them
//! straight into the response, with no copy in between and, for the items a
//! users table holds, no allocation: attribute names are put in order on the
//! stack, numbers DynamoDB sent in JSON's own form are copied as they are,
//! blobs are base64-encoded in place. The text is byte for byte what
//! `serde_json` made of the same item through `Serialize` (a string with
//! nothing to escape is copied whole, any other escaped by `serde_json`).
//!
//! It is a package of its own so that it can be built for speed while the
//! function is built for size (the root `Cargo.toml`'s
//! `[profile.release.package.item-json]`): it is the loop a page runs once per
//! attribute, and the generics it instantiates (the map's iteration, the sort,
//! the buffer's writes, `serde_json`'s escaping) are built with it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A DynamoDB item (or an M value) as a JSON object, attributes in name order.
pub struct ItemJson<'a>(pub &'a HashMap<String, AttributeValue>);

impl ItemJson<'_> {
    /// Appends the item's JSON to `out`. On an error (a number that is not
    /// one, a type this API does not know) `out` holds part of the item.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), String> {
        write_map(out, self.0)
    }

    /// The item's JSON as a string.
    pub fn to_json(&self) -> Result<String, String> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        String::from_utf8(out).map_err(|err| err.to_string())
    }
}

/// Maps of up to this many attributes are put in name order on the stack.
const ON_STACK: usize = 16;

/// Stands in the unused slots of the stack's array.
static NOTHING: AttributeValue = AttributeValue::Null(true);

/// An attribute, with the first 8 bytes of its name as a big-endian number
/// (zero-padded): two names whose keys differ are in the order of their keys,
/// so most comparisons of a sort are one of integers, not of strings.
#[derive(Clone, Copy)]
struct Entry<'a> {
    key: u64,
    name: &'a str,
    value: &'a AttributeValue,
}

impl<'a> Entry<'a> {
    fn new(name: &'a str, value: &'a AttributeValue) -> Self {
        // Whole words where the name has 8 bytes, byte by byte where it has
        // fewer: a copy of a length known only at run time would be a call
        // to `memcpy` per attribute.
        let key = match name.as_bytes().first_chunk::<8>() {
            Some(head) => u64::from_be_bytes(*head),
            None => name
                .bytes()
                .enumerate()
                .fold(0, |key, (at, byte)| key | u64::from(byte) << (56 - 8 * at)),
        };
        Self { key, name, value }
    }

    /// The order of `str`'s `cmp`: a key is less only where the name is.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| self.name.cmp(other.name))
    }
}

fn write_map(out: &mut Vec<u8>, map: &HashMap<String, AttributeValue>) -> Result<(), String> {
    // The names sorted with their values beside them: no lookup by name (a
    // SipHash of each name) and, up to `ON_STACK` attributes, no allocation.
    if map.len() <= ON_STACK {
        let mut entries = [Entry::new("", &NOTHING); ON_STACK];
        for (entry, (name, value)) in entries.iter_mut().zip(map) {
            *entry = Entry::new(name, value);
        }
        write_entries(out, &mut entries[..map.len()])
    } else {
        let mut entries: Vec<Entry<'_>> = map
            .iter()
            .map(|(name, value)| Entry::new(name, value))
            .collect();
        write_entries(out, &mut entries)
    }
}

fn write_entries(out: &mut Vec<u8>, entries: &mut [Entry<'_>]) -> Result<(), String> {
    // Names are unique within a map, so an unstable sort gives the one order.
    entries.sort_unstable_by(Entry::cmp);
    out.push(b'{');
    for (index, entry) in entries.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_str(out, entry.name);
        out.push(b':');
        write_value(out, entry.value)?;
    }
    out.push(b'}');
    Ok(())
}

/// One attribute value as plain JSON.
fn write_value(out: &mut Vec<u8>, value: &AttributeValue) -> Result<(), String> {
    match value {
        AttributeValue::S(s) => write_str(out, s),
        AttributeValue::N(n) => write_number(out, n)?,
        AttributeValue::Bool(true) => out.extend_from_slice(b"true"),
        AttributeValue::Bool(false) => out.extend_from_slice(b"false"),
        AttributeValue::Null(_) => out.extend_from_slice(b"null"),
        AttributeValue::B(blob) => write_base64(out, blob.as_ref()),
        AttributeValue::M(map) => write_map(out, map)?,
        AttributeValue::L(list) => write_list(out, list, write_value)?,
        AttributeValue::Ss(strings) => write_list(out, strings, |out, s| {
            write_str(out, s);
            Ok(())
        })?,
        AttributeValue::Ns(numbers) => write_list(out, numbers, |out, n| write_number(out, n))?,
        AttributeValue::Bs(blobs) => write_list(out, blobs, |out, blob| {
            write_base64(out, blob.as_ref());
            Ok(())
        })?,
        _ => return Err("attribute of a type this API does not know".to_owned()),
    }
    Ok(())
}

fn write_list<T>(
    out: &mut Vec<u8>,
    list: &[T],
    mut write: impl FnMut(&mut Vec<u8>, &T) -> Result<(), String>,
) -> Result<(), String> {
    out.push(b'[');
    for (index, value) in list.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write(out, value)?;
    }
    out.push(b']');
    Ok(())
}

/// A JSON string. One with nothing to escape, as names and most values are,
/// is copied whole between its quotes (one reservation, one copy); any other
/// is escaped by `serde_json` (writing into a `Vec` cannot fail). Either way
/// the bytes are `serde_json`'s: it escapes exactly `"`, `\\` and the bytes
/// below 0x20.
#[inline]
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
    {
        let _ = serde_json::to_writer(&mut *out, s);
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Base64 in place (its alphabet needs no escaping).
fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len() + 1;
    let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    out.resize(start + len + 1, b'"');
    let _ = STANDARD.encode_slice(bytes, &mut out[start..start + len]);
}

/// A DynamoDB number as a JSON number, digit for digit. DynamoDB trims
/// leading (and trailing) zeroes of the numbers it stores, so what it sends
/// is already in JSON's form and is copied as it is, once checked; only
/// another form is rewritten ([`normalize_number`]).
fn write_number(out: &mut Vec<u8>, n: &str) -> Result<(), String> {
    if is_json_number(n.as_bytes()) {
        out.extend_from_slice(n.as_bytes());
    } else {
        let normalized = normalize_number(n).ok_or_else(|| format!("not a number: {n:?}"))?;
        out.extend_from_slice(normalized.as_bytes());
    }
    Ok(())
}

/// Whether `n` is a JSON number exactly as [`normalize_number`] would write
/// it: `-`? (`0` | a digit 1-9 and digits) (`.` digits)? (`E` (`+`|`-`)? digits)?.
fn is_json_number(n: &[u8]) -> bool {
    let digits = |at: usize| at + n[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut at = usize::from(n.first() == Some(&b'-'));
    match n.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => at = digits(at),
        _ => return false,
    }
    if n.get(at) == Some(&b'.') {
        let end = digits(at + 1);
        if end == at + 1 {
            return false;
        }
        at = end;
    }
    if n.get(at) == Some(&b'E') {
        at += 1;
        if matches!(n.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let end = digits(at);
        if end == at {
            return false;
        }
        at = end;
    }
    at == n.len()
}

/// DynamoDB numbers are decimal strings that JSON may not accept as written
/// (`+1`, `.5`, `5.`, `007`). Rewrite only those forms, never the digits.
fn normalize_number(n: &str) -> Option<String> {
    let (sign, rest) = match n.as_bytes().first()? {
        b'-' => ("-", &n[1..]),
        b'+' => ("", &n[1..]),
        _ => ("", n),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int)
        || !frac.is_none_or(digits)
        || (int.is_empty() && frac.is_none_or(str::is_empty))
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let mut out = format!("{sign}{}", if int.is_empty() { "0" } else { int });
    if let Some(frac) = frac.filter(|f| !f.is_empty()) {
        out.push('.');
        out.push_str(frac);
    }
    if let Some(exp) = exponent {
        let (exp_sign, exp_digits) = match exp.as_bytes().first()? {
            b'-' => ("-", &exp[1..]),
            b'+' => ("+", &exp[1..]),
            _ => ("", exp),
        };
        if exp_digits.is_empty() || !digits(exp_digits) {
            return None;
        }
        out.push('E');
        out.push_str(exp_sign);
        out.push_str(exp_digits);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
