use super::*;
use axum::http::HeaderValue;

fn key(values: &[&[u8]]) -> Result<Option<String>, String> {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(HEADER, HeaderValue::from_bytes(value).unwrap());
    }
    key_of(&headers)
}

#[test]
fn a_key_is_1_to_255_visible_ascii_characters_quoted_or_not() {
    assert_eq!(key(&[]), Ok(None));
    assert_eq!(key(&[b"abc-123"]), Ok(Some("abc-123".to_owned())));
    assert_eq!(key(&[b"\"abc-123\""]), Ok(Some("abc-123".to_owned())));
    assert_eq!(key(&[b"!~"]), Ok(Some("!~".to_owned())));
    assert_eq!(key(&[&[b'k'; 255]]), Ok(Some("k".repeat(255))));
    assert_eq!(key(&[b"\"a"]), Ok(Some("\"a".to_owned())));
}

#[test]
fn anything_else_is_refused() {
    let refused = Err("Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned());
    for bad in [
        &b""[..],
        b"\"\"",
        b"has space",
        b"tab\there",
        &[b'k'; 256],
        b"\xc3\xa9",
    ] {
        assert_eq!(key(&[bad]), refused, "{bad:?}");
    }
    assert_eq!(
        key(&[b"a", b"b"]),
        Err("Send one Idempotency-Key header, not several".to_owned())
    );
}
