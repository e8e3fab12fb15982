use super::*;
use crate::number::{is_json_number, normalize_number};

/// Every item of a Scan's answer as plain JSON, each one's key, and the `LastEvaluatedKey`.
type Read = (Vec<String>, Vec<Option<String>>, Option<String>);

fn read(json: &str) -> Result<Read, Unreadable> {
    let mut answer = ScanAnswer::new(json.as_bytes(), "id")?;
    let (mut items, mut keys) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    while let Some(item) = answer.next_item(&mut out)? {
        items.push(String::from_utf8(std::mem::take(&mut out)).unwrap());
        keys.push(item.key.map(|key| String::from_utf8(key.to_vec()).unwrap()));
    }
    let last = answer.last_evaluated_key()?;
    Ok((
        items,
        keys,
        last.map(|key| String::from_utf8(key.to_vec()).unwrap()),
    ))
}

fn one_item(item: &str) -> Result<String, Unreadable> {
    read(&format!(
        r#"{{"Items":[{item}],"Count":1,"ScannedCount":1}}"#
    ))
    .map(|(mut items, _, _)| items.remove(0))
}

fn json_number(n: &str) -> Result<String, ()> {
    let mut out = Vec::new();
    number::write_number(&mut out, n)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn every_attribute_type_becomes_its_plain_json_in_the_order_sent() {
    let item = r#"{"s":{"S":"x"},"n":{"N":"1.50"},"null":{"NULL":true},"bin":{"B":"aGk="},
        "m":{"M":{"b":{"BOOL":true},"f":{"BOOL":false}}},"l":{"L":[{"N":"2"},{"S":"y"},{"L":[]}]},
        "ss":{"SS":["a","b"]},"ns":{"NS":["1","-0.5"]},"bs":{"BS":["AA=="]},"e":{"M":{}}}"#;
    assert_eq!(
        one_item(item).unwrap(),
        r#"{"s":"x","n":1.50,"null":null,"bin":"aGk=","m":{"b":true,"f":false},"l":[2,"y",[]],"ss":["a","b"],"ns":[1,-0.5],"bs":["AA=="],"e":{}}"#
    );
}

#[test]
fn strings_and_names_are_copied_with_their_escapes_and_mean_the_same() {
    let text = "a\u{1}\u{1f}\"\\\n\t\r\u{8}\u{c}/é✓";
    let escaped = serde_json::to_string(text).unwrap();
    let json = format!(r#"{{{escaped}:{{"S":{escaped}}},"u":{{"S":"\u00e9\/"}}}}"#);
    let plain = one_item(&json).unwrap();
    assert_eq!(plain, format!(r#"{{{escaped}:{escaped},"u":"\u00e9\/"}}"#));
    let value: serde_json::Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(value[text], text);
    assert_eq!(value["u"], "é/");
}

#[test]
fn whitespace_between_tokens_is_dropped() {
    let item = " {\n \"id\" : { \"S\" : \"u1\" } ,\t\"n\":{\"NS\" : [ \"1\" , \"2\" ] } } ";
    let (items, keys, last) = read(&format!(
        " {{ \"LastEvaluatedKey\" : {{ \"id\" : {{\"S\":\"u1\"}} }} , \"Items\" : [ {item} , {item} ] }} "
    ))
    .unwrap();
    assert_eq!(items, [r#"{"id":"u1","n":[1,2]}"#; 2]);
    assert_eq!(
        keys,
        [Some(r#""u1""#.to_owned()), Some(r#""u1""#.to_owned())]
    );
    assert_eq!(last.as_deref(), Some(r#"{ "id" : {"S":"u1"} }"#));
}

#[test]
fn each_item_gives_its_key_only_where_the_key_is_a_string_at_its_top() {
    let (_, keys, _) = read(
        r#"{"Items":[{"name":{"S":"a"},"id":{"S":"u\"1"}},{"id":{"N":"7"}},{"m":{"M":{"id":{"S":"in"}}}},{"idx":{"S":"x"},"i":{"S":"y"}}]}"#,
    )
    .unwrap();
    assert_eq!(keys, [Some(r#""u\"1""#.to_owned()), None, None, None]);
}

#[test]
fn the_last_evaluated_key_is_found_before_or_after_the_items_or_not_at_all() {
    let key = r#"{"id":{"S":"u9"}}"#;
    let items = r#""Items":[{"id":{"S":"u1"}}]"#;
    for json in [
        format!(r#"{{"LastEvaluatedKey":{key},{items},"Count":1}}"#),
        format!(r#"{{{items},"Count":1,"LastEvaluatedKey":{key},"ScannedCount":1}}"#),
        format!(
            r#"{{"ConsumedCapacity":{{"TableName":"t","CapacityUnits":0.5}},{items},"LastEvaluatedKey":{key}}}"#
        ),
    ] {
        let (items, _, last) = read(&json).unwrap();
        assert_eq!(items.len(), 1, "{json}");
        assert_eq!(last.as_deref(), Some(key), "{json}");
    }
    assert_eq!(
        read(r#"{"Count":0,"Items":[],"ScannedCount":0}"#).unwrap(),
        (vec![], vec![], None)
    );
    assert_eq!(read("{}").unwrap(), (vec![], vec![], None));
    // Items not read are skipped to reach the key.
    let json = format!(r#"{{{items},"LastEvaluatedKey":{key}}}"#);
    let answer = ScanAnswer::new(json.as_bytes(), "id").unwrap();
    assert_eq!(answer.last_evaluated_key().unwrap(), Some(key.as_bytes()));
}

#[test]
fn what_is_not_a_scan_answer_is_an_error_never_a_page() {
    for item in [
        r#"{"a":{"X":"1"}}"#,
        r#"{"a":{"S":1}}"#,
        r#"{"a":{"N":"12abc"}}"#,
        r#"{"a":{"N":"1","S":"2"}}"#,
        r#"{"a":{"BOOL":"true"}}"#,
        r#"{"a":{"NULL":false}}"#,
        r#"{"a":{"SS":[1]}}"#,
        r#"{"a":{"NS":["x"]}}"#,
        r#"{"a":{"L":{}}}"#,
        r#"{"a":"plain"}"#,
        r#"{"a" {"S":"x"}}"#,
        r#"{"a":{"S":"x"} "b":{"S":"y"}}"#,
        r#"["a"]"#,
    ] {
        assert!(one_item(item).is_err(), "{item}");
    }
    for json in [
        "",
        "[]",
        r#"{"Items":{}}"#,
        r#"{"Items":[{}"#,
        r#"{"Count":}"#,
        r#"{"Items":[]"#,
    ] {
        assert!(read(json).is_err(), "{json:?}");
    }
}

#[test]
fn every_prefix_of_an_answer_is_an_error_and_no_panic() {
    let json = r#"{"Items":[{"id":{"S":"u\"1"},"l":{"L":[{"M":{"n":{"N":"-1.5E+3"}}},{"BOOL":false}]},"z":{"NULL":true}}],"Count":1,"LastEvaluatedKey":{"id":{"S":"u1"}}}"#;
    read(json).unwrap();
    for end in 0..json.len() {
        assert!(read(&json[..end]).is_err(), "{}", &json[..end]);
    }
}

#[test]
fn nesting_deeper_than_dynamodb_allows_is_refused() {
    let nested = |depth: usize| {
        let mut value = r#"{"S":"x"}"#.to_owned();
        for _ in 0..depth {
            value = format!(r#"{{"L":[{value}]}}"#);
        }
        format!(r#"{{"a":{value}}}"#)
    };
    assert!(one_item(&nested(40)).is_ok());
    assert!(one_item(&nested(64)).is_err());
    let deep_key = format!(
        r#"{{"Items":[],"LastEvaluatedKey":{}}}"#,
        "[".repeat(100_000)
    );
    assert!(read(&deep_key).is_err());
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
        assert_eq!(
            one_item(&format!(r#"{{"n":{{"N":"{dynamodb}"}}}}"#)).unwrap(),
            format!(r#"{{"n":{json}}}"#)
        );
    }
    for bad in ["", "-", "abc", "1.2.3", "1e", "0x10", "NaN", "."] {
        assert!(json_number(bad).is_err(), "{bad:?}");
    }
}
