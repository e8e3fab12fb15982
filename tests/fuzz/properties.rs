//! The properties: whatever the event, the function answers as the contract says or refuses it, and never panics.

use super::*;

/// Inputs the arbitrary-JSON property once failed on, shrunk: JSON that is no
/// object, which a serde struct reads as a sequence of its fields (`[[]]` was
/// an empty SQS batch, `["<uuid>", 1]` a task event).
fn arbitrary_json_regressions() -> Vec<String> {
    let mut inputs: Vec<String> = ["[[]]", "[]", "\"x\"", "1", "null", "true", " \n[[]]"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    inputs.push(json!([{"task_id": UNRECORDED_TASK, "delay_ms": 1}]).to_string());
    inputs.push(json!([UNRECORDED_TASK, 1]).to_string());
    inputs.push(json!([[{"messageId": "m", "body": "{}"}]]).to_string());
    inputs
}

#[test]
fn arbitrary_json_and_text_never_panic_the_function_nor_write() {
    let harness = Harness::new("arbitrary-json");
    let strategy = prop_oneof![
        4 => json_value().prop_map(|v| v.to_string()),
        1 => any::<String>(),
        1 => odd_string(),
        1 => (1..2000usize).prop_map(|d| nested(d, "")),
        1 => (1..2000usize).prop_map(|d| format!("{}{}", "{\"a\":".repeat(d), "}".repeat(d))),
    ];
    harness.run(&arbitrary_json_regressions(), strategy, |_, event| {
        event.clone()
    });
}

#[test]
fn mutated_and_truncated_real_events_of_every_source_never_5xx_nor_write_when_rejected() {
    let harness = Harness::new("mutated-events");
    let samples = sample_events();
    let strategy = (
        select(samples),
        vec(json_mutation(), 0..4),
        proptest::option::of(text_mutation()),
    );
    harness.run(&[], strategy, |_, (sample, json_mutations, text)| {
        let mut event = match serde_json::from_str::<Value>(sample) {
            Ok(mut value) => {
                for mutation in json_mutations {
                    apply_json(&mut value, mutation);
                }
                value.to_string()
            }
            Err(_) => sample.clone(),
        };
        if let Some(mutation) = text {
            apply_text(&mut event, mutation);
        }
        event
    });
}

#[test]
fn hostile_http_requests_of_every_source_never_5xx_never_write_when_rejected_never_run_a_task() {
    let harness = Harness::new("hostile-http");
    // Half the bodies are the recorded task's own event, sent over HTTP to any
    // path: that must never run it.
    let strategy = (http_case(), any::<bool>());
    harness.run(&[], strategy, |harness, (case, carry_task)| {
        let mut case = case.clone();
        if *carry_task {
            case.body = Some(harness.known_task_event());
            case.base64 = false;
        }
        http_event(&case).replace(KNOWN_TASK, &harness.known_task)
    });
}

/// A fixed corpus, so that the inputs that matter most run on every CI run
/// whatever the random draw.
#[test]
fn a_corpus_of_hostile_requests_gets_contract_answers() {
    let harness = Harness::new("corpus");
    let huge = format!("{{\"delay_ms\": {}}}", "9".repeat(5000));
    let deep = format!("{{\"delay_ms\": {}}}", nested(10_000, "1"));
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let exactly = format!("{}{{}}", " ".repeat(MAX_BODY - 2));
    let binary = STANDARD.encode([0xff_u8, 0xfe, 0x00, 0x80, b'{', b'}']);
    let mut corpus = Vec::new();
    for source in [
        Source::HttpApi,
        Source::FunctionUrl,
        Source::RestApi,
        Source::Alb,
    ] {
        let case = |method: &str, path: &str, query: &str, body: Option<&str>, base64: bool| {
            http_event(&HttpCase {
                source,
                stage: "Prod".to_owned(),
                method: method.to_owned(),
                path: path.to_owned(),
                query: query.to_owned(),
                headers: vec![],
                body: body.map(str::to_owned),
                base64,
            })
        };
        for (method, path, query) in [
            ("GET", "/tasks/%FF", ""),
            ("GET", "/tasks/%C3%28", ""),
            ("GET", "/tasks/%00", ""),
            ("GET", "/%2e%2e/users", ""),
            ("GET", "/./users", ""),
            ("GET", "//users", ""),
            ("GET", "/Prod/users", "limit=1&limit=2"),
            ("GET", "/users", "limit=99999999999999999999"),
            ("GET", "/users", "limit=%FF"),
            ("GET", "/users", "cursor=%FF"),
            ("GET", "/users", "cursor=%E2%80%AE"),
            ("GET", "/users", "limit=&cursor="),
            ("GET", &format!("/{}", "a".repeat(10_000)), ""),
            ("PROPFIND", "/users", ""),
            ("get", "/users", ""),
        ] {
            corpus.push(case(method, path, query, None, false));
        }
        for (body, base64) in [
            (huge.as_str(), false),
            (deep.as_str(), false),
            (big.as_str(), false),
            (exactly.as_str(), false),
            (binary.as_str(), true),
            (binary.as_str(), false),
            ("{\"delay_ms\": 1e99999}", false),
            ("\u{feff}{}", false),
        ] {
            corpus.push(case("POST", "/async", "", Some(body), base64));
        }
        corpus.push(case(
            "POST",
            "/events",
            "",
            Some(&harness.known_task_event()),
            false,
        ));
    }
    harness.run_each(&corpus);
}
