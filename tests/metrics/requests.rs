//! The process's and the requests' metrics, the namespace, the log formats, and the trace header each Invoke carries.

use super::*;

#[tokio::test]
async fn cold_start_is_counted_once_per_process_on_its_first_invocation() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    fixture.seed_users(2).await;

    for concurrency in ["1", "4"] {
        let process = json_logging(&api, &fixture)
            .env("AWS_LAMBDA_MAX_CONCURRENCY", concurrency)
            .spawn();
        // Four invocations queued at once: with 4 per process they run together.
        let submitted: Vec<_> = (0..4)
            .map(|_| api.submit(events::http_api("GET", "/users", None)))
            .collect();
        for invocation in submitted {
            assert_eq!(status_of(&invocation.outcome().await), 200);
        }
        let documents = stop_and_read(process, since_ms).await;
        assert_eq!(
            documents[0],
            cold_start(),
            "the first document (AWS_LAMBDA_MAX_CONCURRENCY={concurrency})"
        );
        assert_eq!(
            documents[1..],
            vec![requests("/users", "2xx"); 4],
            "AWS_LAMBDA_MAX_CONCURRENCY={concurrency}"
        );
    }
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status_class_never_by_raw_path() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    fixture.seed_users(2).await;
    let process = json_logging(&api, &fixture).spawn();
    let unknown_task = uuid::Uuid::new_v4().to_string();
    let answers = [
        (events::http_api("GET", "/users", None), 200),
        (events::http_api("GET", "/users?limit=0", None), 400),
        (events::rest_api("Prod", "GET", "/users", None), 200),
        (events::alb("GET", "/users", None), 200),
        (events::http_api("DELETE", "/users", None), 405),
        (
            events::function_url("GET", &format!("/tasks/{unknown_task}"), None),
            404,
        ),
        (events::http_api("GET", "/tasks/not-a-task-id", None), 400),
        (events::http_api("GET", "/openapi.json", None), 200),
        (events::http_api("GET", "/secret-path/123", None), 404),
        (events::http_api("POST", "/nope", Some("{}")), 404),
    ];
    for (event, status) in &answers {
        assert_eq!(status_of(&api.invoke(event.clone()).await), *status);
    }
    let documents = stop_and_read(process, since_ms).await;
    assert_eq!(
        documents,
        vec![
            cold_start(),
            requests("/users", "2xx"),
            requests("/users", "4xx"),
            requests("/users", "2xx"),
            requests("/users", "2xx"),
            requests("/users", "4xx"),
            requests("/tasks/{task_id}", "4xx"),
            requests("/tasks/{task_id}", "4xx"),
            requests("/openapi.json", "2xx"),
            requests("unmatched", "4xx"),
            requests("unmatched", "4xx"),
        ]
    );

    // DynamoDB unreachable: a 503, counted as a 5xx of its route.
    let since_ms = epoch_millis();
    let api = RuntimeApi::start(test_function()).await;
    let process = json_logging(&api, &fixture)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &support::dead_endpoint())
        .spawn();
    let outcome = api.invoke(events::http_api("GET", "/users", None)).await;
    assert_eq!(status_of(&outcome), 503);
    assert_eq!(
        stop_and_read(process, since_ms).await,
        vec![cold_start(), requests("/users", "5xx")]
    );
}

#[tokio::test]
async fn the_namespace_is_metrics_namespace_when_set() {
    let since_ms = epoch_millis();
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let process = json_logging(&api, &fixture)
        .env("METRICS_NAMESPACE", "Shop/Orders")
        .spawn();
    let outcome = api.invoke(events::http_api("GET", "/nope", None)).await;
    assert_eq!(status_of(&outcome), 404);
    let documents = stop_and_read(process, since_ms).await;
    let namespaces: Vec<&Value> = documents
        .iter()
        .map(|document| &document["_aws"]["CloudWatchMetrics"][0]["Namespace"])
        .collect();
    assert_eq!(namespaces, vec!["Shop/Orders", "Shop/Orders"]);
}

#[tokio::test]
async fn a_namespace_cloudwatch_would_refuse_stops_init_and_says_why() {
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let output = json_logging(&api, &fixture)
        .env("METRICS_NAMESPACE", "AWS/Lambda")
        .spawn()
        .wait_for_exit(Duration::from_secs(20))
        .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        output
            .stdout
            .iter()
            .any(|line| line.contains("METRICS_NAMESPACE") && line.contains("AWS/")),
        "{output:?}"
    );
    assert_eq!(api.next_polls(), 0);
}

#[tokio::test]
async fn with_text_logs_in_lambda_the_emf_documents_are_still_printed() {
    // A deployer who sets `LogFormat: Text` keeps the metrics and the alarms.
    let since_ms = epoch_millis();
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    let process = function_command(&api, &fixture)
        .env("AWS_LAMBDA_LOG_FORMAT", "Text")
        .spawn();
    let outcome = api.invoke(events::http_api("GET", "/nope", None)).await;
    assert_eq!(status_of(&outcome), 404);
    assert_eq!(
        stop_and_read(process, since_ms).await,
        vec![cold_start(), requests("unmatched", "4xx")]
    );

    // And with no log format at all (Text is Lambda's default).
    let since_ms = epoch_millis();
    let process = function_command(&api, &fixture)
        .without_env("AWS_LAMBDA_LOG_FORMAT")
        .spawn();
    let outcome = api.invoke(events::http_api("GET", "/nope", None)).await;
    assert_eq!(status_of(&outcome), 404);
    assert_eq!(
        stop_and_read(process, since_ms).await,
        vec![cold_start(), requests("unmatched", "4xx")]
    );
}

/// The binary as `cargo lambda watch` runs it: the Runtime API's variables,
/// no log group, no log format.
fn under_watch(api: &RuntimeApi, fixture: &Fixture) -> FunctionCommand {
    function_command(api, fixture)
        .without_env("AWS_LAMBDA_LOG_GROUP_NAME")
        .without_env("AWS_LAMBDA_LOG_STREAM_NAME")
        .without_env("AWS_LAMBDA_INITIALIZATION_TYPE")
        .without_env("AWS_LAMBDA_LOG_FORMAT")
}

#[tokio::test]
async fn under_cargo_lambda_watch_the_metrics_are_readable_debug_lines_not_json() {
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;

    // At the default level (INFO), nothing of the metrics shows.
    let process = under_watch(&api, &fixture).spawn();
    let outcome = api.invoke(events::http_api("GET", "/nope", None)).await;
    assert_eq!(status_of(&outcome), 404);
    let output = process.stop().await;
    assert!(
        !output.stdout.iter().any(|line| line.contains("_aws")
            || line.contains("Requests")
            || line.contains("ColdStart")),
        "{:#?}",
        output.stdout
    );

    // At DEBUG, one line per document, in words.
    let process = under_watch(&api, &fixture)
        .env("AWS_LAMBDA_LOG_LEVEL", "debug")
        .spawn();
    let outcome = api.invoke(events::http_api("GET", "/nope", None)).await;
    assert_eq!(status_of(&outcome), 404);
    let output = process.stop().await;
    let metrics: Vec<&str> = output
        .stdout
        .iter()
        .filter_map(|line| line.split_once(" metrics ").map(|(_, metrics)| metrics))
        .collect();
    assert_eq!(
        metrics,
        vec!["ColdStart=1", "Requests=1 Route=unmatched StatusClass=4xx"],
        "{:#?}",
        output.stdout
    );
    assert!(!output.stdout.iter().any(|line| line.contains("_aws")));
}

/// The `Root` field of an X-Ray trace header.
fn root_of(header: &str) -> &str {
    header
        .split(';')
        .find_map(|field| field.strip_prefix("Root="))
        .unwrap_or_else(|| panic!("no Root in {header:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invoke_carries_the_trace_root_of_the_invocation_that_made_it() {
    let api = RuntimeApi::start(test_function()).await;
    let fixture = Fixture::new(&api.url()).await;
    // A process-wide trace id left over from another invocation: what the
    // SDK's recursion detection would send if the function passed none.
    let stale = "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0";

    for concurrency in ["1", "4"] {
        let process = function_command(&api, &fixture)
            .env("AWS_LAMBDA_MAX_CONCURRENCY", concurrency)
            .env("_X_AMZN_TRACE_ID", stale)
            .spawn();
        let submitted: Vec<_> = (0..4)
            .map(|_| {
                api.submit(events::http_api(
                    "POST",
                    "/async",
                    Some(r#"{"delay_ms": 0}"#),
                ))
            })
            .collect();
        // task id -> the trace id of the request that started it.
        let mut started = HashMap::new();
        for invocation in submitted {
            let trace_id = invocation.trace_id.clone();
            let outcome = invocation.outcome().await;
            assert_eq!(status_of(&outcome), 202);
            let task_id = body_of(&outcome)["task_id"]
                .as_str()
                .expect("task_id")
                .to_owned();
            started.insert(task_id, trace_id);
        }
        let delivered = api.wait_for_events(TASK_PATIENCE).await;
        process.stop().await;

        let calls: Vec<_> = api
            .invoke_calls()
            .into_iter()
            .filter(|call| {
                let payload: Value = serde_json::from_slice(&call.payload).expect("JSON payload");
                started.contains_key(payload["task_id"].as_str().expect("task_id"))
            })
            .collect();
        assert_eq!(calls.len(), 4, "concurrency {concurrency}");
        for call in calls {
            let payload: Value = serde_json::from_slice(&call.payload).expect("JSON payload");
            let task_id = payload["task_id"].as_str().expect("task_id");
            let header = call
                .trace_header
                .as_deref()
                .unwrap_or_else(|| panic!("the Invoke of {task_id} has no X-Amzn-Trace-Id"));
            assert_eq!(
                root_of(header),
                root_of(&started[task_id]),
                "the Invoke of task {task_id} (AWS_LAMBDA_MAX_CONCURRENCY={concurrency})"
            );
            // And so, as in Lambda, the task's own invocation is in that trace.
            let task_invocation = delivered
                .iter()
                .find(|completed| Some(&completed.request_id) == call.request_id.as_ref())
                .expect("the task's invocation");
            assert_eq!(
                root_of(&task_invocation.trace_id),
                root_of(&started[task_id])
            );
        }
    }
}
