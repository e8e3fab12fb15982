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
        let mut head = [0_u8; 8];
        let len = name.len().min(8);
        head[..len].copy_from_slice(&name.as_bytes()[..len]);
        Self {
            key: u64::from_be_bytes(head),
            name,
            value,
        }
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
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;

    fn json_number(n: &str) -> Result<String, String> {
        let mut out = Vec::new();
        write_number(&mut out, n)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_number_copied_as_sent_is_the_one_normalize_would_write() {
        let samples = [
            "0", "-0", "7", "-42", "10", "1.5", "0.000001", "1E+125", "1E-130", "-9.9E125", "1e5",
            "+7", ".5", "5.", "007", "-007.50", "0.", "1E", "1E+", "-", "", "1.2.3", "00", "1x",
            "١",
        ];
        for n in samples {
            if is_json_number(n.as_bytes()) {
                assert_eq!(normalize_number(n).as_deref(), Some(n), "{n:?}");
                assert!(
                    serde_json::from_str::<serde_json::Number>(n).is_ok(),
                    "{n:?}"
                );
            }
        }
        for n in [
            "0",
            "-42",
            "1.5",
            "1E+125",
            "3.1415926535897932384626433832795028",
        ] {
            assert!(is_json_number(n.as_bytes()), "{n:?}");
        }
        for n in ["1e5", "+7", ".5", "5.", "007", "0.", "1E", "-", "", "00"] {
            assert!(!is_json_number(n.as_bytes()), "{n:?}");
        }
    }

    #[test]
    fn strings_and_names_are_escaped_as_serde_json_escapes_them() {
        let text = "a\u{1}\u{1f}\"\\\n\t\r\u{8}\u{c}/é✓";
        let item = HashMap::from([(text.to_owned(), AttributeValue::S(text.into()))]);
        let escaped = serde_json::to_string(text).unwrap();
        assert_eq!(
            ItemJson(&item).to_json().unwrap(),
            format!("{{{escaped}:{escaped}}}")
        );
    }

    #[test]
    fn every_string_is_written_as_serde_json_writes_it() {
        // Every byte value a string can start, end or be made of.
        let mut texts: Vec<String> = (0_u8..=0x7f)
            .map(|byte| format!("a{}b", char::from(byte)))
            .collect();
        texts.extend(
            [
                "",
                "plain",
                "é✓ ünïcödé",
                "\u{7f}\u{80}\u{ffff}",
                "a/b",
                "\"",
                "\\",
            ]
            .map(String::from),
        );
        for text in texts {
            let mut out = Vec::new();
            write_str(&mut out, &text);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&text).unwrap(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_map_of_more_attributes_than_the_stack_holds_is_in_name_order_too() {
        let item: HashMap<String, AttributeValue> = (0..40)
            .map(|i| (format!("a{i:02}"), AttributeValue::Bool(i % 2 == 0)))
            .collect();
        let expected = (0..40)
            .map(|i| format!("\"a{i:02}\":{}", i % 2 == 0))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            ItemJson(&item).to_json().unwrap(),
            format!("{{{expected}}}")
        );
    }

    #[test]
    fn numbers_keep_every_digit_and_become_valid_json() {
        for (dynamodb, json) in [
            ("0", "0"),
            ("-12", "-12"),
            (
                "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345678",
            ),
            (
                "3.14159265358979323846264338327950288",
                "3.14159265358979323846264338327950288",
            ),
            ("+7", "7"),
            (".5", "0.5"),
            ("5.", "5"),
            ("007", "7"),
            ("1E+125", "1E+125"),
            ("-1e-130", "-1E-130"),
        ] {
            assert_eq!(json_number(dynamodb).unwrap(), json, "{dynamodb}");
        }
        for bad in ["", "-", "abc", "1.2.3", "1e", "0x10", "NaN", "."] {
            assert!(json_number(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_attribute_type_becomes_its_plain_json_with_names_in_order() {
        let nested = HashMap::from([("b".to_owned(), AttributeValue::Bool(true))]);
        let item = HashMap::from([
            ("s".to_owned(), AttributeValue::S("x".into())),
            ("n".to_owned(), AttributeValue::N("1.50".into())),
            ("null".to_owned(), AttributeValue::Null(true)),
            (
                "bin".to_owned(),
                AttributeValue::B(Blob::new(b"hi".to_vec())),
            ),
            ("m".to_owned(), AttributeValue::M(nested)),
            (
                "l".to_owned(),
                AttributeValue::L(vec![
                    AttributeValue::N("2".into()),
                    AttributeValue::S("y".into()),
                ]),
            ),
            (
                "ss".to_owned(),
                AttributeValue::Ss(vec!["a".into(), "b".into()]),
            ),
            (
                "ns".to_owned(),
                AttributeValue::Ns(vec!["1".into(), "-0.5".into()]),
            ),
            (
                "bs".to_owned(),
                AttributeValue::Bs(vec![Blob::new(b"\x00".to_vec())]),
            ),
        ]);
        assert_eq!(
            ItemJson(&item).to_json().unwrap(),
            r#"{"bin":"aGk=","bs":["AA=="],"l":[2,"y"],"m":{"b":true},"n":1.50,"ns":[1,-0.5],"null":null,"s":"x","ss":["a","b"]}"#
        );
    }

    #[test]
    fn names_are_in_the_order_of_str_whatever_their_first_eight_bytes() {
        let names = [
            "",
            "\u{0}",
            "a",
            "a\u{0}",
            "a\u{0}\u{0}",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefgh\u{0}",
            "abcdefghi",
            "abcdefgg",
            "abcdefgz",
            "abcdefghij",
            "b",
            "é",
            "éa",
            "\u{7f}",
            "Z",
            "id",
            "email",
            "name",
        ];
        let item: HashMap<String, AttributeValue> = names
            .iter()
            .map(|name| ((*name).to_owned(), AttributeValue::Null(true)))
            .collect();
        let mut sorted = names.to_vec();
        sorted.sort();
        let expected = sorted
            .iter()
            .map(|name| format!("{}:null", serde_json::to_string(name).unwrap()))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            ItemJson(&item).to_json().unwrap(),
            format!("{{{expected}}}")
        );
        for pair in names.iter().flat_map(|a| names.iter().map(move |b| (a, b))) {
            let (a, b) = pair;
            let value = AttributeValue::Null(true);
            assert_eq!(
                Entry::new(a, &value).cmp(&Entry::new(b, &value)),
                a.cmp(b),
                "{a:?} {b:?}"
            );
        }
    }

    #[test]
    fn a_number_that_is_not_one_fails_the_item_rather_than_being_guessed() {
        let item = HashMap::from([("n".to_owned(), AttributeValue::N("12abc".into()))]);
        let err = ItemJson(&item).to_json().unwrap_err();
        assert_eq!(err, r#"not a number: "12abc""#);
    }
}
