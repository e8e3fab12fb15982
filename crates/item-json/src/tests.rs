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
        "+7", ".5", "5.", "007", "-007.50", "0.", "1E", "1E+", "-", "", "1.2.3", "00", "1x", "١",
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
