//! The checker proves itself against broadened copies of the policy.

use super::*;

#[test]
fn the_parser_reads_short_tags_as_their_long_forms() {
    let short = parse(
        "a: !Ref T\nb: !GetAtt T.Arn\nc: !Sub arn:${AWS::Partition}:x\nd: !Join ['', [a, !Ref T]]\n",
    );
    let long = parse(
        "a: {Ref: T}\nb: {Fn::GetAtt: [T, Arn]}\nc: {Fn::Sub: 'arn:${AWS::Partition}:x'}\nd: {Fn::Join: ['', [a, {Ref: T}]]}\n",
    );
    assert_eq!(short, long);
    assert_eq!(short["b"], json!({"Fn::GetAtt": ["T", "Arn"]}));
}

/// The real template, with the statement that grants `action` replaced by `f(statement)`.
pub(super) fn with_statement(action: &str, f: impl FnOnce(&mut Value)) -> Value {
    let mut template = parse(TEMPLATE);
    let id = function_id(&template);
    let policies = &mut template["Resources"][id.as_str()]["Properties"]["Policies"];
    let statement = policies
        .as_array_mut()
        .expect("Policies is a list")
        .iter_mut()
        .flat_map(|policy| policy["Statement"].as_array_mut().into_iter().flatten())
        .find(|statement| {
            one_or_many(&statement["Action"])
                .iter()
                .any(|a| a.as_str() == Some(action))
        })
        .unwrap_or_else(|| panic!("a statement grants {action}"));
    f(statement);
    template
}

/// The real template with one more entry in the function's `Policies`.
fn with_policy(policy: Value) -> Value {
    let mut template = parse(TEMPLATE);
    let id = function_id(&template);
    template["Resources"][id.as_str()]["Properties"]["Policies"]
        .as_array_mut()
        .expect("Policies is a list")
        .push(policy);
    template
}

#[test]
fn the_checker_rejects_a_wildcard_action() {
    let template = with_statement("dynamodb:GetItem", |statement| {
        statement["Action"] = json!("dynamodb:*");
    });
    assert_eq!(
        policy_violations(&template),
        ["ReadWriteTasks: action dynamodb:* has a wildcard"]
    );
}

#[test]
fn the_checker_rejects_every_broadened_copy_of_the_policy() {
    let users_arn = json!({"Fn::GetAtt": ["UsersTable", "Arn"]});
    let tasks_arn = json!({"Fn::GetAtt": ["TasksTable", "Arn"]});
    let queue_arn = json!({"Fn::GetAtt": ["TaskFailureQueue", "Arn"]});
    let dead_letters_arn = json!({"Fn::GetAtt": ["TaskFailureDeadLetterQueue", "Arn"]});
    let allow_any = |action: Value| {
        with_policy(json!({"Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}))
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "Resource *",
            with_statement("dynamodb:Scan", |s| s["Resource"] = json!("*")),
        ),
        (
            "an action the function does not need",
            with_statement("dynamodb:GetItem", |s| {
                s["Action"]
                    .as_array_mut()
                    .expect("list")
                    .push(json!("dynamodb:DeleteItem"))
            }),
        ),
        (
            "an action with a ? wildcard",
            with_statement("dynamodb:Scan", |s| s["Action"] = json!("dynamodb:Sca?")),
        ),
        (
            "Scan on the tasks table too",
            with_statement("dynamodb:Scan", |s| {
                s["Resource"] = json!([users_arn, tasks_arn])
            }),
        ),
        (
            "writes on the users table",
            with_statement("dynamodb:PutItem", |s| s["Resource"] = users_arn.clone()),
        ),
        (
            "the table's indexes",
            with_statement("dynamodb:Scan", |s| {
                s["Resource"] = json!({"Fn::Sub": "${UsersTable.Arn}/index/*"})
            }),
        ),
        (
            "every table of the account",
            with_statement(
                "dynamodb:Scan",
                |s| s["Resource"] = json!({"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"}),
            ),
        ),
        (
            "a fixed ARN",
            with_statement("dynamodb:Scan", |s| {
                s["Resource"] = json!("arn:aws:dynamodb:us-east-1:123456789012:table/users")
            }),
        ),
        (
            "every function",
            with_statement(
                "lambda:InvokeFunction",
                |s| s["Resource"] = json!({"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*"}),
            ),
        ),
        (
            "another function",
            with_statement(
                "lambda:InvokeFunction",
                |s| s["Resource"] = json!({"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:other"}),
            ),
        ),
        (
            "the function by reference (circular)",
            with_statement("lambda:InvokeFunction", |s| {
                s["Resource"] = json!({"Fn::GetAtt": ["ApiFunction", "Arn"]})
            }),
        ),
        (
            "NotAction",
            with_statement("dynamodb:Scan", |s| {
                s["NotAction"] = json!("iam:*");
            }),
        ),
        (
            "SendMessage on another queue",
            with_policy(
                json!({"Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage",
                "Resource": {"Fn::GetAtt": ["TasksTable", "Arn"]}}]}),
            ),
        ),
        (
            "SAM's DynamoDBReadPolicy",
            with_policy(json!({"DynamoDBReadPolicy": {"TableName": {"Ref": "UsersTable"}}})),
        ),
        (
            "SAM's DynamoDBCrudPolicy",
            with_policy(json!({"DynamoDBCrudPolicy": {"TableName": {"Ref": "TasksTable"}}})),
        ),
        (
            "SAM's LambdaInvokePolicy",
            with_policy(
                json!({"LambdaInvokePolicy": {"FunctionName": {"Fn::Sub": "${AWS::StackName}-api"}}}),
            ),
        ),
        (
            "a broad managed policy",
            with_policy(json!("AmazonDynamoDBFullAccess")),
        ),
        (
            "every SQS action on the failure queue",
            with_statement("sqs:ReceiveMessage", |s| s["Action"] = json!("sqs:*")),
        ),
        (
            "ReceiveMessage on every queue of the account",
            with_statement(
                "sqs:ReceiveMessage",
                |s| s["Resource"] = json!({"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:*"}),
            ),
        ),
        (
            "ReceiveMessage on the dead-letter queue too",
            with_statement("sqs:ReceiveMessage", |s| {
                s["Resource"] = json!([queue_arn, dead_letters_arn])
            }),
        ),
        (
            "ReceiveMessage on Resource *",
            with_statement("sqs:ReceiveMessage", |s| s["Resource"] = json!("*")),
        ),
        (
            "the queue by its URL",
            with_statement("sqs:ReceiveMessage", |s| {
                s["Resource"] = json!({"Ref": "TaskFailureQueue"})
            }),
        ),
        (
            "PurgeQueue on the failure queue",
            with_statement("sqs:ReceiveMessage", |s| {
                s["Action"]
                    .as_array_mut()
                    .expect("list")
                    .push(json!("sqs:PurgeQueue"))
            }),
        ),
        (
            "ChangeMessageVisibility, which the mapping does not need",
            with_statement("sqs:ReceiveMessage", |s| {
                s["Action"]
                    .as_array_mut()
                    .expect("list")
                    .push(json!("sqs:ChangeMessageVisibility"))
            }),
        ),
        (
            "SendMessage to the dead-letter queue",
            with_policy(
                json!({"Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": dead_letters_arn}]}),
            ),
        ),
        ("every X-Ray action", allow_any(json!("xray:*"))),
        (
            "X-Ray's sampling reads",
            allow_any(json!("xray:GetSamplingRules")),
        ),
        (
            "another service's action on * beside X-Ray's",
            allow_any(json!(["xray:PutTraceSegments", "dynamodb:Scan"])),
        ),
        (
            "PutTraceSegments on a table",
            with_policy(
                json!({"Statement": [{"Effect": "Allow", "Action": "xray:PutTraceSegments", "Resource": users_arn}]}),
            ),
        ),
        (
            "SAM's SQSPollerPolicy",
            with_policy(
                json!({"SQSPollerPolicy": {"QueueName": {"Fn::GetAtt": ["TaskFailureQueue", "QueueName"]}}}),
            ),
        ),
        (
            "the SQS execution managed policy",
            with_policy(json!("AWSLambdaSQSQueueExecutionRole")),
        ),
        (
            "X-Ray's managed policy written into Policies",
            with_policy(json!("AWSXrayWriteOnlyAccess")),
        ),
        ("SAM's SQS event for the failure queue", {
            let mut template = parse(TEMPLATE);
            let id = function_id(&template);
            template["Resources"][id.as_str()]["Properties"]["Events"]["FailureRecords"] =
                json!({"Type": "SQS", "Properties": {"Queue": queue_arn}});
            template
        }),
        ("a Role of its own", {
            let mut template = parse(TEMPLATE);
            let id = function_id(&template);
            template["Resources"][id.as_str()]["Properties"]["Role"] =
                json!({"Fn::GetAtt": ["SomeRole", "Arn"]});
            template
        }),
        ("an IAM policy resource beside the function", {
            let mut template = parse(TEMPLATE);
            template["Resources"]["ExtraPolicy"] =
                json!({"Type": "AWS::IAM::Policy", "Properties": {}});
            template
        }),
    ];
    for (case, template) in cases {
        assert!(
            !policy_violations(&template).is_empty(),
            "the checker let {case} through"
        );
    }
    // The basic execution role, SendMessage on the failure queue, X-Ray's two
    // write actions on "*" and a Deny narrow nothing: the checker lets them
    // through.
    let mut template = with_policy(json!("AWSLambdaBasicExecutionRole"));
    let id = function_id(&template);
    template["Resources"][id.as_str()]["Properties"]["Policies"]
        .as_array_mut()
        .expect("list")
        .push(json!({"Statement": [
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["TaskFailureQueue", "Arn"]}},
            {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"},
            {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
        ]}));
    assert_eq!(policy_violations(&template), Vec::<String>::new());
}

#[test]
fn the_check_of_what_sam_generates_rejects_sam_s_sqs_event_a_broadened_and_a_missing_grant() {
    let variants = [
        (
            "SAM's SQS event",
            TEMPLATE.replacen(
                "      Events:\n",
                "      Events:\n        FailureRecords:\n          Type: SQS\n          Properties:\n            Queue: !GetAtt TaskFailureQueue.Arn\n",
                1,
            ),
            "AWSLambdaSQSQueueExecutionRole",
        ),
        (
            "the mapping's grants on every resource",
            TEMPLATE.replacen(
                "Resource: !GetAtt TaskFailureQueue.Arn",
                "Resource: \"*\"",
                1,
            ),
            "ConsumeTaskFailureRecords: sqs:ReceiveMessage on AnyResource",
        ),
        (
            "a grant the mapping needs, left out",
            TEMPLATE.replacen("                - sqs:GetQueueAttributes\n", "", 1),
            "the inline policies grant",
        ),
    ];
    // One translator run each, at once: each takes about a second.
    std::thread::scope(|scope| {
        let runs: Vec<_> = variants
            .iter()
            .map(|(case, yaml, expected)| {
                assert_ne!(yaml, TEMPLATE, "{case}: the variant differs");
                (
                    case,
                    expected,
                    scope.spawn(|| generated_role_violations(yaml)),
                )
            })
            .collect();
        for (case, expected, run) in runs {
            let violations = run.join().expect("the check ends");
            assert!(
                violations.iter().any(|v| v.contains(*expected)),
                "{case}: {violations:?} has nothing about {expected}"
            );
        }
    });
}
