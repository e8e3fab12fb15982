//! What the deployment sets up: the failure queue, the parameters, tracing, logs, CORS, alarms and the dashboard.

use super::*;

/// The one resource of type `kind`: its logical id and its definition.
pub(super) fn resource_of_type<'a>(template: &'a Value, kind: &str) -> (&'a str, &'a Value) {
    let found: Vec<(&String, &Value)> = resources(template)
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind}");
    (found[0].0.as_str(), found[0].1)
}

/// Every resource of type `kind`, by logical id.
pub(super) fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(template)
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .map(|(id, resource)| (id.as_str(), resource))
        .collect()
}

/// The definition of the parameter `value` (a `!Ref`) names.
pub(super) fn parameter_of<'a>(template: &'a Value, value: &Value) -> &'a Value {
    let name = ref_target(value).unwrap_or_else(|| panic!("{value} is a !Ref of a parameter"));
    let parameter = &template["Parameters"][name];
    assert!(parameter.is_object(), "{name} is a parameter");
    parameter
}

pub(super) fn function_properties(template: &Value) -> &Value {
    &template["Resources"][function_id(template).as_str()]["Properties"]
}

#[test]
fn the_failure_queue_feeds_the_function_which_reports_batch_item_failures() {
    let template = parse(TEMPLATE);
    let id = function_id(&template);
    let queue = Scope::of(&template, &id)
        .failure_queue
        .expect("an SQS on-failure destination");
    let (_, mapping) = resource_of_type(&template, "AWS::Lambda::EventSourceMapping");
    let mapping = &mapping["Properties"];
    assert_eq!(mapping["FunctionName"], json!({"Ref": id}));
    assert_eq!(
        mapping["EventSourceArn"],
        json!({"Fn::GetAtt": [queue, "Arn"]})
    );
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    // Lambda refuses a queue whose visibility timeout is below the function's
    // timeout: a batch still in the function's hands would be delivered again.
    let queue_properties = &template["Resources"][queue.as_str()]["Properties"];
    let visibility = queue_properties["VisibilityTimeout"]
        .as_u64()
        .expect("VisibilityTimeout");
    let timeout = function_properties(&template)["Timeout"]
        .as_u64()
        .expect("Timeout");
    assert!(visibility >= timeout, "{visibility} s < {timeout} s");
    // A record that keeps failing goes aside, for people, instead of being
    // received again until it expires.
    let dead_letters = arn_of(&queue_properties["RedrivePolicy"]["deadLetterTargetArn"])
        .expect("a RedrivePolicy to a queue of the template");
    assert_ne!(dead_letters, queue);
    assert_eq!(
        template["Resources"][dead_letters]["Type"],
        "AWS::SQS::Queue"
    );
}

#[test]
fn lambda_s_maximum_event_age_and_the_function_s_backstop_come_from_one_parameter() {
    let template = parse(TEMPLATE);
    let function = function_properties(&template);
    let age = &function["EventInvokeConfig"]["MaximumEventAgeInSeconds"];
    assert_eq!(
        &function["Environment"]["Variables"]["TASK_EVENT_MAX_AGE_SECONDS"],
        age
    );
    let parameter = parameter_of(&template, age);
    assert_eq!(parameter["Default"], json!(3600));
    // Lambda's own bounds for MaximumEventAgeInSeconds.
    assert_eq!(parameter["MinValue"], json!(60));
    assert_eq!(parameter["MaxValue"], json!(21600));
}

#[test]
fn lambda_s_retry_attempts_and_the_function_s_setting_come_from_one_parameter_of_0_to_2() {
    let template = parse(TEMPLATE);
    let function = function_properties(&template);
    let retries = &function["EventInvokeConfig"]["MaximumRetryAttempts"];
    assert_eq!(retries, &json!({"Ref": "TaskMaxRetryAttempts"}));
    assert_eq!(
        &function["Environment"]["Variables"]["TASK_MAX_RETRY_ATTEMPTS"],
        retries
    );
    let parameter = parameter_of(&template, retries);
    assert_eq!(parameter["Type"], "Number");
    assert_eq!(parameter["Default"], json!(2));
    // Lambda's own range for MaximumRetryAttempts.
    assert_eq!(parameter["AllowedValues"], json!([0, 1, 2]));
}

#[test]
fn a_parameter_caps_the_function_s_concurrency_and_does_by_default() {
    let template = parse(TEMPLATE);
    let function = function_properties(&template);
    let reserved = &function["ReservedConcurrentExecutions"];
    let [condition, capped, uncapped] = reserved["Fn::If"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    else {
        panic!(
            "ReservedConcurrentExecutions is !If [condition, !Ref parameter, !Ref AWS::NoValue]: {reserved}"
        );
    };
    assert_eq!(uncapped, &json!({"Ref": "AWS::NoValue"}));
    let condition = condition.as_str().expect("a condition's name");
    assert_eq!(
        template["Conditions"][condition],
        json!({"Fn::Not": [{"Fn::Equals": [capped, "none"]}]}),
        "only `none` lifts the cap"
    );
    let parameter = parameter_of(&template, capped);
    let default: u64 = parameter["Default"]
        .as_str()
        .and_then(|default| default.parse().ok())
        .unwrap_or_else(|| panic!("the default is a number: {parameter}"));
    assert!((1..=100).contains(&default), "{default}");
    // The description states the compute a day this default allows, so it
    // cannot drift from the number.
    let memory_mb = function["MemorySize"].as_u64().expect("MemorySize");
    let gb_seconds = default * 86_400 * memory_mb / 1024;
    let stated = format!("{gb_seconds}")
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|digits| std::str::from_utf8(digits).expect("digits"))
        .collect::<Vec<_>>()
        .join(",");
    let description = parameter["Description"].as_str().unwrap_or_default();
    assert!(
        description.contains(&format!("{stated} GB-s")),
        "{description:?} does not state {stated} GB-s"
    );
}

#[test]
fn the_function_is_traced_by_x_ray() {
    let template = parse(TEMPLATE);
    assert_eq!(function_properties(&template)["Tracing"], "Active");
}

#[test]
fn the_function_gets_its_metrics_namespace_from_a_parameter_defaulting_to_async_api() {
    let template = parse(TEMPLATE);
    let namespace =
        &function_properties(&template)["Environment"]["Variables"]["METRICS_NAMESPACE"];
    assert_eq!(parameter_of(&template, namespace)["Default"], "AsyncApi");
}

#[test]
fn the_http_api_logs_each_request_as_a_json_line_with_its_request_ids() {
    let template = parse(TEMPLATE);
    let (_, api) = resource_of_type(&template, "AWS::Serverless::HttpApi");
    let settings = &api["Properties"]["AccessLogSettings"];
    // $context.error.messageString is the one variable API Gateway quotes itself.
    let format = settings["Format"]
        .as_str()
        .expect("a Format string")
        .replace(
            "$context.error.messageString",
            "\"$context.error.messageString\"",
        );
    let format: Value = serde_json::from_str(&format).expect("the format is JSON");
    assert_eq!(format["requestId"], "$context.requestId");
    // The function's request id: the request_id of error bodies and of its logs.
    assert_eq!(format["lambdaRequestId"], "$context.integration.requestId");
    for (key, value) in format.as_object().expect("an object") {
        assert!(
            value.as_str().is_some_and(|v| v.starts_with("$context.")),
            "{key}: {value}"
        );
    }
    let group = arn_of(&settings["DestinationArn"]).expect("a log group of the template");
    let group = &template["Resources"][group];
    assert_eq!(group["Type"], "AWS::Logs::LogGroup");
    assert!(
        group["Properties"]["RetentionInDays"].is_u64(),
        "a retention period"
    );
}

#[test]
fn browsers_may_send_and_read_the_methods_and_headers_of_the_contract() {
    let template = parse(TEMPLATE);
    let (_, api) = resource_of_type(&template, "AWS::Serverless::HttpApi");
    // As deployed either way: the header of a JWT is allowed when there is one.
    for jwt in [false, true] {
        let cors = resolve(
            &api["Properties"]["CorsConfiguration"],
            &[("HasJwtAuthorizer", jwt)],
        )
        .expect("CORS");
        browsers_may_send_and_read(&cors, jwt);
    }
}

fn browsers_may_send_and_read(cors: &Value, jwt: bool) {
    let names = |key: &str| -> BTreeSet<String> {
        one_or_many(&cors[key])
            .iter()
            .filter_map(|name| name.as_str())
            .map(str::to_ascii_lowercase)
            .collect()
    };
    let expect = |key: &str, wanted: &[&str]| {
        let have = names(key);
        for name in wanted {
            assert!(have.contains(*name), "{key} lacks {name}: {have:?}");
        }
    };
    expect("AllowMethods", &["get", "post", "delete"]);
    expect("AllowHeaders", &["content-type", "idempotency-key"]);
    assert_eq!(
        names("AllowHeaders").contains("authorization"),
        jwt,
        "authorization is an allowed header exactly when there is a JWT authorizer"
    );
    expect(
        "ExposeHeaders",
        &["location", "retry-after", "idempotent-replayed"],
    );
}

/// `value` as CloudFormation deploys it when each named condition has the
/// given value: every `Fn::If` of them taken, `AWS::NoValue` left out (`None`
/// when `value` itself is). Other intrinsics stay as they are.
pub(super) fn resolve(value: &Value, conditions: &[(&str, bool)]) -> Option<Value> {
    if let Some((condition, then, otherwise)) = if_branches(value)
        && let Some((_, holds)) = conditions.iter().find(|(name, _)| *name == condition)
    {
        return resolve(if *holds { then } else { otherwise }, conditions);
    }
    match value {
        Value::Object(_) if ref_target(value) == Some("AWS::NoValue") => None,
        Value::Object(object) => Some(Value::Object(
            object
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), resolve(value, conditions)?)))
                .collect(),
        )),
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|item| resolve(item, conditions))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

#[test]
fn alarms_on_failed_tasks_given_up_tasks_and_5xx_answers_tell_one_topic() {
    let template = parse(TEMPLATE);
    let function = function_id(&template);
    let queue = Scope::of(&template, &function)
        .failure_queue
        .expect("failure queue");
    let (api, _) = resource_of_type(&template, "AWS::Serverless::HttpApi");
    let (topic, _) = resource_of_type(&template, "AWS::SNS::Topic");
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    for (id, alarm) in &alarms {
        for key in ["AlarmActions", "OKActions"] {
            assert_eq!(
                alarm["Properties"][key],
                json!([{"Ref": topic}]),
                "{id} {key}"
            );
        }
    }
    let any = |what: &str, test: &dyn Fn(&Value) -> bool| {
        assert!(
            alarms.iter().any(|(_, alarm)| test(&alarm["Properties"])),
            "no alarm on {what}"
        );
    };
    // The function's EMF metric, in the namespace the function writes to.
    let namespace =
        &function_properties(&template)["Environment"]["Variables"]["METRICS_NAMESPACE"];
    any("TasksFailed", &|alarm| {
        alarm["Namespace"] == *namespace
            && alarm["MetricName"] == "TasksFailed"
            && alarm["Dimensions"] == json!([{"Name": "Service", "Value": {"Ref": function}}])
    });
    // Lambda's destination records, or records waiting, in the failure queue.
    any("the failure queue", &|alarm| {
        alarm["Namespace"] == "AWS/SQS"
            && alarm["Dimensions"]
                == json!([{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}])
    });
    // The rate of 5xx: metric math over the API's 5xx and Count.
    any("the rate of 5xx answers", &|alarm| {
        let metrics = one_or_many(&alarm["Metrics"]);
        let id_of = |name: &str| {
            metrics.iter().find_map(|metric| {
                let stat = &metric["MetricStat"]["Metric"];
                (stat["Namespace"] == "AWS/ApiGateway"
                    && stat["MetricName"] == name
                    && stat["Dimensions"] == json!([{"Name": "ApiId", "Value": {"Ref": api}}]))
                .then(|| metric["Id"].as_str())
                .flatten()
            })
        };
        let (Some(errors), Some(requests)) = (id_of("5xx"), id_of("Count")) else {
            return false;
        };
        metrics.iter().any(|metric| {
            metric["ReturnData"] == true
                && metric["Expression"]
                    .as_str()
                    .is_some_and(|e| e.contains(&format!("{errors} / {requests}")))
        })
    });
    // An e-mail subscription only when an address is given.
    let (_, subscription) = resource_of_type(&template, "AWS::SNS::Subscription");
    let properties = &subscription["Properties"];
    assert_eq!(properties["TopicArn"], json!({"Ref": topic}));
    assert_eq!(properties["Protocol"], "email");
    assert_eq!(
        parameter_of(&template, &properties["Endpoint"])["Default"],
        ""
    );
    let condition = subscription["Condition"].as_str().expect("a Condition");
    assert_eq!(
        template["Conditions"][condition],
        json!({"Fn::Not": [{"Fn::Equals": [properties["Endpoint"], ""]}]})
    );
}

#[test]
fn the_dashboard_shows_every_task_and_request_metric_and_every_alarm() {
    let template = parse(TEMPLATE);
    let function = function_id(&template);
    let (_, dashboard) = resource_of_type(&template, "AWS::CloudWatch::Dashboard");
    let body = sub_string(&dashboard["Properties"]["DashboardBody"]).expect("a !Sub body");
    // Each ${X} names a parameter, a resource (or its attribute) or a pseudo
    // parameter, and stands in the JSON as the bare X.
    let mut plain = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').expect("closed ${") + start;
        let variable = &rest[start + 2..end];
        let name = variable.split('.').next().unwrap_or_default();
        assert!(
            name.starts_with("AWS::")
                || template["Parameters"][name].is_object()
                || template["Resources"][name].is_object(),
            "${{{variable}}} names nothing of the template"
        );
        plain += &rest[..start];
        plain += variable;
        rest = &rest[end + 1..];
    }
    plain += rest;
    let body: Value = serde_json::from_str(&plain).expect("the body is JSON");
    let namespace = ref_target(
        &function_properties(&template)["Environment"]["Variables"]["METRICS_NAMESPACE"],
    )
    .expect("METRICS_NAMESPACE is a parameter");

    let widgets = body["widgets"].as_array().expect("widgets");
    let rows: Vec<&Value> = widgets
        .iter()
        .flat_map(|widget| one_or_many(&widget["properties"]["metrics"]))
        .collect();
    for metric in [
        "TasksEnqueued",
        "TasksSucceeded",
        "TasksFailed",
        "TasksCanceled",
        "TaskDuplicateDeliveries",
        "TaskQueuedMs",
        "TaskRunMs",
        "ColdStart",
    ] {
        assert!(
            rows.iter().any(|row| row.get(0) == Some(&json!(namespace))
                && row.get(1) == Some(&json!(metric))
                && row.get(2) == Some(&json!("Service"))
                && row.get(3) == Some(&json!(function))),
            "no {metric} of the function"
        );
    }
    let requests = format!(
        "SEARCH('{{{namespace},Service,Route,StatusClass}} MetricName=\"Requests\" Service=\"{function}\"'"
    );
    assert!(
        rows.iter().any(|row| row[0]["expression"]
            .as_str()
            .is_some_and(|e| e.starts_with(&requests))),
        "no {requests}"
    );
    let shown: BTreeSet<&str> = widgets
        .iter()
        .filter(|widget| widget["type"] == "alarm")
        .flat_map(|widget| one_or_many(&widget["properties"]["alarms"]))
        .filter_map(|alarm| alarm.as_str()?.strip_suffix(".Arn"))
        .collect();
    let alarms: BTreeSet<&str> = resources_of_type(&template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(shown, alarms);
}
