//! The template reviewed as a production deploy would be: the JWT authorizer, throttles, alarms, deletion protection, parameters, queues, environments.

use super::*;

/// The one resource of type `kind` of SAM's translation, by its properties.
fn generated_of_type<'a>(generated: &'a Value, kind: &str) -> &'a Value {
    &resource_of_type(generated, kind).1["Properties"]
}

/// The routes the HTTP API's definition has, as (path, method), translated.
fn routes(body: &Value) -> Vec<(String, String, &Value)> {
    body["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .as_object()
                .expect("methods")
                .iter()
                .map(move |(method, operation)| (path.clone(), method.clone(), operation))
        })
        .collect()
}

/// The paths any caller may reach, whatever the parameters.
const PUBLIC_PATHS: [&str; 2] = ["/docs", "/openapi.json"];

#[test]
fn given_an_issuer_and_audience_every_route_but_docs_and_openapi_needs_a_jwt_and_the_function_a_caller()
 {
    let template = parse(TEMPLATE);
    for name in ["JwtIssuer", "JwtAudience"] {
        assert_eq!(template["Parameters"][name]["Default"], "", "{name}");
    }
    assert_eq!(
        template["Conditions"]["HasJwtAuthorizer"],
        json!({"Fn::And": [
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtIssuer"}, ""]}]},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtAudience"}, ""]}]}
        ]})
    );
    // A rule refuses one without the other.
    let rules = template["Rules"].to_string();
    assert!(
        rules.contains(r#"{"Ref":"JwtIssuer"}"#) && rules.contains(r#"{"Ref":"JwtAudience"}"#),
        "{rules}"
    );
    let variables = &function_properties(&template)["Environment"]["Variables"];
    for (jwt, required) in [(false, "false"), (true, "true")] {
        assert_eq!(
            resolve(&variables["REQUIRE_CALLER"], &[("HasJwtAuthorizer", jwt)]),
            Some(json!(required))
        );
    }

    // As SAM translates it, then as CloudFormation deploys it either way.
    let generated = sam_translate(TEMPLATE);
    let api = generated_of_type(&generated, "AWS::ApiGatewayV2::Api");
    for jwt in [false, true] {
        let body = resolve(&api["Body"], &[("HasJwtAuthorizer", jwt)]).expect("a Body");
        let routes = routes(&body);
        let found: BTreeSet<(&str, &str)> = routes
            .iter()
            .map(|(path, method, _)| (path.as_str(), method.as_str()))
            .collect();
        assert_eq!(
            found,
            BTreeSet::from([
                ("/$default", "x-amazon-apigateway-any-method"),
                ("/async", "get"),
                ("/async", "post"),
                ("/docs", "get"),
                ("/openapi.json", "get"),
            ])
        );
        for (path, method, operation) in &routes {
            assert_eq!(
                operation["x-amazon-apigateway-integration"]["type"], "aws_proxy",
                "{method} {path} reaches the function"
            );
            let guarded = jwt && !PUBLIC_PATHS.contains(&path.as_str());
            let expected = guarded.then(|| json!([{"JwtAuthorizer": []}]));
            assert_eq!(
                operation.get("security"),
                expected.as_ref(),
                "{method} {path} (JWT authorizer: {jwt})"
            );
        }
        let schemes = &body["components"]["securitySchemes"];
        if jwt {
            assert_eq!(
                schemes["JwtAuthorizer"]["x-amazon-apigateway-authorizer"],
                json!({
                    "type": "jwt",
                    "identitySource": "$request.header.Authorization",
                    "jwtConfiguration": {
                        "issuer": {"Ref": "JwtIssuer"},
                        "audience": [{"Ref": "JwtAudience"}]
                    }
                })
            );
        } else {
            assert!(body.get("components").is_none(), "{body}");
        }
        let allowed = body["x-amazon-apigateway-cors"]["allowHeaders"].to_string();
        assert_eq!(allowed.contains("\"authorization\""), jwt, "{allowed}");
    }
}

#[test]
fn the_routes_that_start_tasks_have_a_throttle_of_their_own_below_the_stage_s() {
    let template = parse(TEMPLATE);
    let (_, api) = resource_of_type(&template, "AWS::Serverless::HttpApi");
    let stage = &api["Properties"]["DefaultRouteSettings"];
    let routes = api["Properties"]["RouteSettings"]
        .as_object()
        .expect("RouteSettings");
    assert_eq!(
        routes.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["GET /async", "POST /async"])
    );
    for (route, settings) in routes {
        for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
            let stage_limit = stage[limit].as_u64().expect("the stage's limit");
            let parameter = parameter_of(&template, &settings[limit]);
            assert_eq!(parameter["Type"], "Number", "{route} {limit}");
            let max = parameter["MaxValue"].as_u64().expect("MaxValue");
            let default = parameter["Default"].as_u64().expect("Default");
            assert!(max < stage_limit, "{route} {limit}: {max} >= {stage_limit}");
            assert!(default <= max && parameter["MinValue"].as_u64() >= Some(1));
        }
    }
    // Deployed: the stage's route settings name routes the API has.
    let generated = sam_translate(TEMPLATE);
    let stage = generated_of_type(&generated, "AWS::ApiGatewayV2::Stage");
    assert_eq!(stage["RouteSettings"], json!(routes));
    let body = &generated_of_type(&generated, "AWS::ApiGatewayV2::Api")["Body"];
    for route in routes.keys() {
        let (method, path) = route.split_once(' ').expect("METHOD /path");
        assert!(
            body["paths"][path][method.to_ascii_lowercase()].is_object(),
            "no route {route}"
        );
    }
}

#[test]
fn alarms_on_throttles_delivery_failures_event_age_and_errors_and_on_final_task_failures_only() {
    let template = parse(TEMPLATE);
    let function = function_id(&template);
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    let lambda_alarm = |metric: &str| -> &Value {
        let found: Vec<&Value> = alarms
            .iter()
            .map(|(_, alarm)| &alarm["Properties"])
            .filter(|alarm| {
                alarm["Namespace"] == "AWS/Lambda"
                    && alarm["MetricName"] == metric
                    && alarm["Dimensions"]
                        == json!([{"Name": "FunctionName", "Value": {"Ref": function}}])
            })
            .collect();
        assert_eq!(found.len(), 1, "one alarm on Lambda's {metric}");
        found[0]
    };
    for metric in ["Throttles", "DestinationDeliveryFailures"] {
        let alarm = lambda_alarm(metric);
        assert_eq!(alarm["Statistic"], "Sum", "{metric}");
        assert_eq!(alarm["Threshold"], 1, "{metric}");
        assert_eq!(alarm["ComparisonOperator"], "GreaterThanOrEqualToThreshold");
    }
    let age = lambda_alarm("AsyncEventAge");
    assert_eq!(age["ExtendedStatistic"], "p99");
    assert_eq!(age["Threshold"], 300_000, "5 minutes, in milliseconds");
    assert_eq!(age["ComparisonOperator"], "GreaterThanThreshold");
    // An absolute count, whatever the traffic (no metric math over requests).
    let errors = lambda_alarm("Errors");
    assert_eq!(errors["Statistic"], "Sum");
    assert!(errors["Metrics"].is_null());
    assert!(errors["Threshold"].as_u64().is_some_and(|n| n >= 1));

    // TasksFailed counts final failures; no alarm reads attempts Lambda retries.
    let tasks_failed: Vec<&Value> = alarms
        .iter()
        .map(|(_, alarm)| &alarm["Properties"])
        .filter(|alarm| alarm["MetricName"] == "TasksFailed")
        .collect();
    assert_eq!(tasks_failed.len(), 1);
    let description = tasks_failed[0]["AlarmDescription"].as_str().unwrap_or("");
    assert!(
        description.contains("for good") && description.contains("retries does not count"),
        "{description}"
    );
    assert!(!TEMPLATE.contains("MetricName: TaskAttemptsFailed"));

    // Deployed as written.
    let generated = sam_translate(TEMPLATE);
    for (id, alarm) in &alarms {
        assert_eq!(&generated["Resources"][*id], *alarm, "{id}");
    }
}

#[test]
fn both_tables_are_deletion_protected_and_the_users_table_can_be_an_existing_one() {
    let template = parse(TEMPLATE);
    let scope = Scope::of(&template, &function_id(&template));
    let users = scope.users_table.clone().expect("a users table");
    for table in [&users, scope.tasks_table.as_ref().expect("a tasks table")] {
        assert_eq!(
            template["Resources"][table.as_str()]["Properties"]["DeletionProtectionEnabled"],
            true,
            "{table}"
        );
    }
    let parameter = scope
        .users_table_parameter
        .clone()
        .expect("USERS_TABLE is !If [condition, !Ref table, !Ref parameter]");
    assert_eq!(template["Parameters"][parameter.as_str()]["Default"], "");
    let condition = template["Resources"][users.as_str()]["Condition"]
        .as_str()
        .expect("the users table has a Condition");
    assert_eq!(
        template["Conditions"][condition],
        json!({"Fn::Equals": [{"Ref": parameter}, ""]})
    );
    let variables = &function_properties(&template)["Environment"]["Variables"];
    assert_eq!(
        variables["USERS_TABLE"],
        json!({"Fn::If": [condition, {"Ref": users}, {"Ref": parameter}]})
    );
    // Without the table, nothing names it: the function, its policy and the
    // outputs name the parameter's table instead, Scan on that one alone.
    let without = json!({
        "Resources": resolve(&template["Resources"], &[(condition, false)]),
        "Outputs": resolve(&template["Outputs"], &[(condition, false)]),
    });
    let mut others = without.clone();
    others["Resources"]
        .as_object_mut()
        .expect("Resources")
        .remove(&users);
    let text = others.to_string();
    for reference in [
        json!({"Ref": users}).to_string(),
        json!({"Fn::GetAtt": [users, "Arn"]}).to_string(),
        format!("${{{users}"),
    ] {
        assert!(!text.contains(&reference), "{reference} without its table");
    }
    let scan = with_statement("dynamodb:Scan", |_| {});
    let scan = one_or_many(&function_properties(&scan)["Policies"][0]["Statement"])
        .into_iter()
        .find(|statement| statement["Sid"] == "ScanUsers")
        .cloned()
        .expect("ScanUsers");
    assert_eq!(
        resolve(&scan["Resource"], &[(condition, false)]),
        Some(json!({"Fn::Sub": format!(
            "arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/${{{parameter}}}"
        )}))
    );
    assert_eq!(scope.target_of(&scan["Resource"]), Ok(Target::UsersTable));

    // Deployed: the table keeps its condition and protection, and the role
    // SAM generates scans exactly one of the two.
    let generated = sam_translate(TEMPLATE);
    assert_eq!(
        generated["Resources"][users.as_str()],
        template["Resources"][users.as_str()]
    );
    let role = &generated["Resources"][format!("{}Role", scope.function_id).as_str()];
    let statements = role["Properties"]["Policies"].to_string();
    assert!(
        statements.contains(&scan["Resource"].to_string()),
        "{statements}"
    );
}

#[test]
fn the_dashboard_s_name_carries_the_region_and_its_url_the_partition_s_console() {
    let template = parse(TEMPLATE);
    let (id, dashboard) = resource_of_type(&template, "AWS::CloudWatch::Dashboard");
    let name = sub_string(&dashboard["Properties"]["DashboardName"]).expect("a !Sub name");
    assert!(name.contains("${AWS::Region}"), "{name}");
    let url = &template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"];
    let (text, variables) = (url[0].as_str().expect("a !Sub string"), &url[1]);
    assert!(text.starts_with("https://${Console}/cloudwatch/"), "{text}");
    assert!(text.contains(&format!("${{{id}}}")), "{text}");
    assert!(
        !text.contains("amazon"),
        "no partition's domain written in: {text}"
    );
    assert_eq!(
        variables["Console"],
        json!({"Fn::FindInMap": ["PartitionConsole", {"Ref": "AWS::Partition"}, "Domain"]})
    );
    let consoles = &template["Mappings"]["PartitionConsole"];
    for (partition, domain) in [
        ("aws", "console.aws.amazon.com"),
        ("aws-cn", "console.amazonaws.cn"),
        ("aws-us-gov", "console.amazonaws-us-gov.com"),
    ] {
        assert_eq!(consoles[partition]["Domain"], domain, "{partition}");
    }
    let generated = sam_translate(TEMPLATE);
    assert_eq!(generated["Mappings"], template["Mappings"]);
    assert_eq!(
        generated["Outputs"]["DashboardUrl"],
        template["Outputs"]["DashboardUrl"]
    );
    assert_eq!(generated["Resources"][id], template["Resources"][id]);
}

/// Whether each of `values` matches `pattern` whole, as CloudFormation's
/// AllowedPattern does (Java's regex, which Python's `re` agrees with here).
fn full_matches(pattern: &str, values: &[String]) -> Vec<bool> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let output = Command::new(python)
        .args([
            "-c",
            "import json, re, sys; p, vs = json.load(sys.stdin); print(json.dumps([re.fullmatch(p, v) is not None for v in vs]))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(json!([pattern, values]).to_string().as_bytes())?;
            child.wait_with_output()
        })
        .expect("the venv's python runs");
    serde_json::from_slice(&output.stdout).expect("a list of booleans")
}

#[test]
fn no_aws_namespace_and_no_reserved_concurrency_the_failure_queue_mapping_could_take_whole() {
    let template = parse(TEMPLATE);
    let function = function_properties(&template);
    let namespace = parameter_of(
        &template,
        &function["Environment"]["Variables"]["METRICS_NAMESPACE"],
    );
    let pattern = namespace["AllowedPattern"]
        .as_str()
        .expect("AllowedPattern");
    let values = [
        "AsyncApi",
        "Shop/Orders",
        "AWSome",
        "aws/x",
        "AWS/Lambda",
        "AWS/",
        "",
    ];
    let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    assert_eq!(
        full_matches(pattern, &values),
        [true, true, true, true, false, false, false],
        "{pattern}"
    );

    // At least the mapping's MaximumConcurrency + 1, whatever it is set to.
    let (_, mapping) = resource_of_type(&template, "AWS::Lambda::EventSourceMapping");
    let mapping_max = mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"]
        .as_u64()
        .expect("MaximumConcurrency");
    let reserved = &function["ReservedConcurrentExecutions"]["Fn::If"][1];
    let parameter = parameter_of(&template, reserved);
    let pattern = parameter["AllowedPattern"]
        .as_str()
        .expect("AllowedPattern");
    let numbers: Vec<u64> = (0..=10_000).collect();
    let mut values: Vec<String> = numbers.iter().map(u64::to_string).collect();
    values.extend(["none", "03", "", "-1", "1.5"].map(str::to_owned));
    let matches = full_matches(pattern, &values);
    for (n, matched) in numbers.iter().zip(&matches) {
        assert_eq!(
            *matched,
            (mapping_max + 1..=9999).contains(n),
            "{pattern} on {n} (MaximumConcurrency {mapping_max})"
        );
    }
    assert_eq!(matches[numbers.len()..], [true, false, false, false, false]);
    let default = parameter["Default"].as_str().expect("a default");
    assert!(default.parse::<u64>().expect("a number") > mapping_max);

    // Deployed: the translated function keeps the cap and the mapping its maximum.
    let generated = sam_translate(TEMPLATE);
    assert_eq!(
        generated["Parameters"][ref_target(reserved).expect("a parameter")],
        *parameter
    );
}

/// The comment lines right above the first line of `TEMPLATE` that starts
/// (indentation aside) with `key`, joined.
fn comment_above(key: &str) -> String {
    let lines: Vec<&str> = TEMPLATE.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("no {key}"));
    let mut comment: Vec<&str> = lines[..at]
        .iter()
        .rev()
        .take_while(|line| line.trim_start().starts_with('#'))
        .map(|line| line.trim_start().trim_start_matches('#').trim())
        .collect();
    comment.reverse();
    comment.join(" ")
}

#[test]
fn the_dead_letter_queue_outlives_its_source_and_the_visibility_timeout_is_tied_to_the_function_timeout()
 {
    let template = parse(TEMPLATE);
    let queue = Scope::of(&template, &function_id(&template))
        .failure_queue
        .expect("the failure queue");
    let queue = &template["Resources"][queue.as_str()]["Properties"];
    let dead_letters = arn_of(&queue["RedrivePolicy"]["deadLetterTargetArn"]).expect("a DLQ");
    let dead_letters = &template["Resources"][dead_letters]["Properties"];
    let retention = |queue: &Value| queue["MessageRetentionPeriod"].as_u64().expect("retention");
    assert!(
        retention(dead_letters) > retention(queue),
        "a moved message keeps its first enqueue time: the DLQ must keep it longer"
    );
    // Lambda's advice: six times the function's timeout, stated where each is set.
    let timeout = function_properties(&template)["Timeout"]
        .as_u64()
        .expect("Timeout");
    let visibility = queue["VisibilityTimeout"]
        .as_u64()
        .expect("VisibilityTimeout");
    assert_eq!(visibility, 6 * timeout);
    let above_timeout = comment_above("Timeout:");
    assert!(
        above_timeout.contains("VisibilityTimeout")
            && above_timeout.contains(&format!("({visibility})")),
        "{above_timeout}"
    );
    let above_visibility = comment_above("VisibilityTimeout:");
    assert!(
        above_visibility.contains("Timeout, ")
            && above_visibility.contains(&format!("{timeout} s"))
            && above_visibility.contains("six times"),
        "{above_visibility}"
    );
    let generated = sam_translate(TEMPLATE);
    let id = function_id(&template);
    assert_eq!(
        generated["Resources"][id.as_str()]["Properties"]["Timeout"],
        json!(timeout)
    );
}

#[test]
fn samconfig_has_a_dev_and_a_prod_environment() {
    let config = include_str!("../../samconfig.toml");
    // Each [environment.command.parameters] table, its keys and values.
    let mut tables: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    let mut current = String::new();
    for line in config.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            tables.entry(current.clone()).or_default();
        } else if let Some((key, value)) = line.split_once('=')
            && !line.starts_with('#')
        {
            tables
                .entry(current.clone())
                .or_default()
                .push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let value = |table: &str, key: &str| {
        tables
            .get(table)
            .and_then(|entries| entries.iter().find(|(k, _)| k == key))
            .map(|(_, v)| v.clone())
    };
    let dev = value("dev.global.parameters", "stack_name").expect("dev's stack_name");
    let prod = value("prod.global.parameters", "stack_name").expect("prod's stack_name");
    assert_ne!(dev, prod);
    for environment in ["dev", "prod"] {
        let deploy = format!("{environment}.deploy.parameters");
        assert!(tables.contains_key(&deploy), "no [{deploy}]");
        assert_eq!(
            value(&deploy, "capabilities").as_deref(),
            Some("\"CAPABILITY_IAM\"")
        );
    }
    // Production shows its change set before applying it, and takes an
    // authorizer's parameters.
    assert_eq!(
        value("prod.deploy.parameters", "confirm_changeset").as_deref(),
        Some("true")
    );
    let overrides = value("prod.deploy.parameters", "parameter_overrides").unwrap_or_default();
    assert!(overrides.contains("JwtIssuer") && overrides.contains("JwtAudience"));
}

#[test]
fn the_readme_s_deploy_section_names_every_grant_the_template_makes() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("\n## Deploy with SAM")
        .expect("a deploy section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 3)];
    let lower = section.to_ascii_lowercase();
    for (action, _, _) in NEEDED {
        assert!(
            lower.contains(action),
            "the deploy section does not name {action}"
        );
    }
    for name in SAM_MANAGED_POLICIES {
        let name = name.rsplit('/').next().expect("a name");
        assert!(
            section.contains(name),
            "the deploy section does not name {name}"
        );
    }
    // The sampling reads that come with X-Ray's managed policy, and the
    // resource policy that lets the API invoke the function.
    for grant in [
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
        "apigateway.amazonaws.com",
    ] {
        assert!(
            section.contains(grant),
            "the deploy section does not name {grant}"
        );
    }
}
