//! The template: its grants, its tables.

use super::*;

#[test]
fn the_function_policies_grant_nothing_broader_than_the_function_needs() {
    let violations = policy_violations(&parse(TEMPLATE));
    assert_eq!(violations, Vec::<String>::new());
}

#[test]
fn the_function_policies_grant_every_call_the_code_and_the_queue_mapping_make() {
    // SAM adds the grants of the on-failure destination and of tracing itself
    // (see the test of what SAM generates); the rest must be written.
    let expected = needed_by(&[Caller::Code, Caller::FailureQueueMapping]);
    assert_eq!(grants(&parse(TEMPLATE)), expected);

    // The SDK operations src/ calls are exactly those actions: a call the
    // policy lacks is AccessDenied in production, a grant nothing calls is
    // privilege to spare. (`query` is left out: `uri.query()` shares the name.)
    const OPERATIONS: &[(&str, &str)] = &[
        (".scan()", "dynamodb:scan"),
        (".get_item()", "dynamodb:getitem"),
        (".put_item()", "dynamodb:putitem"),
        (".update_item()", "dynamodb:updateitem"),
        (".delete_item()", "dynamodb:deleteitem"),
        (".batch_get_item()", "dynamodb:batchgetitem"),
        (".batch_write_item()", "dynamodb:batchwriteitem"),
        (".transact_get_items()", "dynamodb:gettransactitems"),
        (".transact_write_items()", "dynamodb:writetransactitems"),
        (".describe_table()", "dynamodb:describetable"),
        // A Query of the tasks table names its index.
        (".index_name(", "dynamodb:query"),
        (".invoke()", "lambda:invokefunction"),
        (".invoke_async()", "lambda:invokeasync"),
        (".invoke_with_response_stream()", "lambda:invokefunction"),
    ];
    let code = rust_sources(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")));
    let called: BTreeSet<&str> = OPERATIONS
        .iter()
        .filter(|(call, _)| code.contains(call))
        .map(|(_, action)| *action)
        .collect();
    let by_code = needed_by(&[Caller::Code]);
    let granted: BTreeSet<&str> = by_code.iter().map(|(action, _)| action.as_str()).collect();
    assert_eq!(called, granted);
}

/// Every `.rs` file under `dir`, subdirectories included, as one string.
fn rust_sources(dir: &Path) -> String {
    let mut code = String::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            code += &rust_sources(&path);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            code += &std::fs::read_to_string(&path).expect("source");
        }
    }
    code
}

#[test]
fn the_function_name_is_fixed_so_its_role_names_it_without_a_circular_dependency() {
    let template = parse(TEMPLATE);
    let id = function_id(&template);
    let name = &template["Resources"][id.as_str()]["Properties"]["FunctionName"];
    let name = name
        .as_str()
        .or_else(|| sub_string(name))
        .unwrap_or_else(|| panic!("FunctionName is a string or !Sub: {name}"));
    // Only pseudo parameters (${AWS::StackName}…) may go into it, never another
    // resource, and certainly not the function or its role.
    let mut rest = name;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').expect("closed ${") + start;
        let variable = &rest[start + 2..end];
        assert!(
            variable.starts_with("AWS::"),
            "FunctionName {name:?} depends on {variable}"
        );
        rest = &rest[end + 1..];
    }
    assert!(!name.contains('*'), "{name}");
    // The role names the function by that fixed name.
    assert!(
        grants(&template).contains(&("lambda:invokefunction".to_owned(), Target::ThisFunction))
    );
    let policies = template["Resources"][id.as_str()]["Properties"]["Policies"].to_string();
    for reference in [
        json!({"Ref": id}).to_string(),
        json!({"Fn::GetAtt": [id, "Arn"]}).to_string(),
        format!("${{{id}"),
    ] {
        assert!(
            !policies.contains(&reference),
            "the policies refer to the function: {reference}"
        );
    }
}

#[test]
fn failed_task_events_go_to_the_template_s_own_failure_queue() {
    let template = parse(TEMPLATE);
    let id = function_id(&template);
    let config = &template["Resources"][id.as_str()]["Properties"]["EventInvokeConfig"];
    let on_failure = &config["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"], "SQS", "{on_failure}");
    let queue = arn_of(&on_failure["Destination"])
        .unwrap_or_else(|| panic!("the destination is !GetAtt <queue>.Arn: {on_failure}"));
    assert_eq!(
        template["Resources"][queue]["Type"], "AWS::SQS::Queue",
        "{queue}"
    );
    assert_eq!(
        Scope::of(&template, &id).failure_queue.as_deref(),
        Some(queue)
    );
}

#[test]
fn both_tables_have_point_in_time_recovery_and_encryption_at_rest() {
    let template = parse(TEMPLATE);
    let scope = Scope::of(&template, &function_id(&template));
    for table in [scope.users_table, scope.tasks_table] {
        let table = table.expect("USERS_TABLE and TASKS_TABLE name tables of the template");
        let properties = &template["Resources"][table.as_str()]["Properties"];
        assert_eq!(
            properties["PointInTimeRecoverySpecification"],
            json!({"PointInTimeRecoveryEnabled": true}),
            "{table}"
        );
        assert_eq!(
            properties["SSESpecification"]["SSEEnabled"],
            json!(true),
            "{table}"
        );
    }
}

#[test]
fn the_tables_have_the_keys_of_the_contract() {
    let template = parse(TEMPLATE);
    let scope = Scope::of(&template, &function_id(&template));
    for (table, key) in [(scope.users_table, "id"), (scope.tasks_table, "task_id")] {
        let table = table.expect("table");
        let properties = &template["Resources"][table.as_str()]["Properties"];
        assert_eq!(
            properties["KeySchema"],
            json!([{"AttributeName": key, "KeyType": "HASH"}]),
            "{table}"
        );
        let mut attributes = vec![json!({"AttributeName": key, "AttributeType": "S"})];
        if key == "task_id" {
            // GET /tasks: the index by owner and creation time, all attributes projected.
            attributes.push(json!({"AttributeName": "owner", "AttributeType": "S"}));
            attributes.push(json!({"AttributeName": "created_ms", "AttributeType": "N"}));
            assert_eq!(
                properties["GlobalSecondaryIndexes"],
                json!([{
                    "IndexName": async_api::tasks::store::OWNER_INDEX,
                    "KeySchema": [
                        {"AttributeName": "owner", "KeyType": "HASH"},
                        {"AttributeName": "created_ms", "KeyType": "RANGE"}
                    ],
                    "Projection": {"ProjectionType": "ALL"}
                }])
            );
        }
        assert_eq!(
            properties["AttributeDefinitions"],
            json!(attributes),
            "{table}"
        );
    }
}

#[test]
fn task_records_expire_through_ttl_on_expires_at() {
    let template = parse(TEMPLATE);
    let tasks = Scope::of(&template, &function_id(&template))
        .tasks_table
        .expect("TASKS_TABLE names a table");
    assert_eq!(
        template["Resources"][tasks.as_str()]["Properties"]["TimeToLiveSpecification"],
        json!({"AttributeName": "expires_at", "Enabled": true})
    );
}
