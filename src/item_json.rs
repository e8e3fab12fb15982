//! A DynamoDB item as plain JSON, the way `GET /users` shows it: S string, N a
//! JSON number with every digit DynamoDB stored (never through an `f64`),
//! BOOL, NULL, M object, L array, SS/NS arrays, B/BS base64 strings.
//!
//! [`ItemJson`] and [`AttributeJson`] are views: they borrow the SDK's values
//! and serialize them straight into the response, with no copy in between.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// A DynamoDB item (or an M value) as a JSON object, attributes in name order.
pub struct ItemJson<'a>(pub &'a HashMap<String, AttributeValue>);

impl Serialize for ItemJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        let mut map = serializer.serialize_map(Some(names.len()))?;
        for name in names {
            map.serialize_entry(name, &AttributeJson(&self.0[name]))?;
        }
        map.end()
    }
}

/// One attribute value as plain JSON.
pub struct AttributeJson<'a>(pub &'a AttributeValue);

impl Serialize for AttributeJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AttributeValue::S(s) => serializer.serialize_str(s),
            AttributeValue::N(n) => json_number(n)
                .map_err(S::Error::custom)?
                .serialize(serializer),
            AttributeValue::Bool(b) => serializer.serialize_bool(*b),
            AttributeValue::Null(_) => serializer.serialize_unit(),
            AttributeValue::B(blob) => serializer.serialize_str(&STANDARD.encode(blob.as_ref())),
            AttributeValue::M(map) => ItemJson(map).serialize(serializer),
            AttributeValue::L(list) => {
                let mut seq = serializer.serialize_seq(Some(list.len()))?;
                for value in list {
                    seq.serialize_element(&AttributeJson(value))?;
                }
                seq.end()
            }
            AttributeValue::Ss(strings) => strings.serialize(serializer),
            AttributeValue::Ns(numbers) => {
                let mut seq = serializer.serialize_seq(Some(numbers.len()))?;
                for n in numbers {
                    seq.serialize_element(&json_number(n).map_err(S::Error::custom)?)?;
                }
                seq.end()
            }
            AttributeValue::Bs(blobs) => {
                let mut seq = serializer.serialize_seq(Some(blobs.len()))?;
                for blob in blobs {
                    seq.serialize_element(&STANDARD.encode(blob.as_ref()))?;
                }
                seq.end()
            }
            _ => Err(S::Error::custom(
                "attribute of a type this API does not know",
            )),
        }
    }
}

/// A DynamoDB number as a raw JSON number, digit for digit.
fn json_number(n: &str) -> Result<Box<RawValue>, String> {
    let normalized = normalize_number(n).ok_or_else(|| format!("not a number: {n:?}"))?;
    RawValue::from_string(normalized).map_err(|err| err.to_string())
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
            assert_eq!(json_number(dynamodb).unwrap().get(), json, "{dynamodb}");
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
            serde_json::to_string(&ItemJson(&item)).unwrap(),
            r#"{"bin":"aGk=","bs":["AA=="],"l":[2,"y"],"m":{"b":true},"n":1.50,"ns":[1,-0.5],"null":null,"s":"x","ss":["a","b"]}"#
        );
    }

    #[test]
    fn a_number_that_is_not_one_fails_the_item_rather_than_being_guessed() {
        let item = HashMap::from([("n".to_owned(), AttributeValue::N("12abc".into()))]);
        let err = serde_json::to_string(&ItemJson(&item)).unwrap_err();
        assert_eq!(err.to_string(), r#"not a number: "12abc""#);
    }
}
