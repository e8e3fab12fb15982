//! template.yaml keeps to least privilege and keeps its data safe.
//!
//! The template is parsed as CloudFormation reads it (short tags such as
//! `!Sub`, `!GetAtt` and `!Ref` become their long `Fn::` forms), then
//! [`policy_violations`] checks every statement the function's `Policies` grant
//! against what the function does: Scan on its users table; GetItem, PutItem
//! and UpdateItem on its tasks table; InvokeFunction on itself; SendMessage on
//! its failure queue; and the basic execution role for its logs. The tables,
//! the function's own name and the queue are read from the template (the
//! `USERS_TABLE`/`TASKS_TABLE` variables, `FunctionName`, the on-failure
//! destination), not assumed. The checker is itself tested against
//! deliberately broadened copies of the real policy.

use std::collections::BTreeSet;

use serde_json::{Value, json};

const TEMPLATE: &str = include_str!("../template.yaml");

// ---------------------------------------------------------------------------
// Reading the template
// ---------------------------------------------------------------------------

/// The template as JSON, every intrinsic function in its long form.
fn parse(yaml: &str) -> Value {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("template.yaml is YAML");
    to_json(value)
}

fn to_json(value: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Yaml;
    match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .or_else(|| n.as_f64().map(Value::from))
            .unwrap_or(Value::Null),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Yaml::Mapping(mapping) => Value::Object(
            mapping
                .into_iter()
                .map(|(key, value)| {
                    let key = match key {
                        Yaml::String(s) => s,
                        other => serde_yaml::to_string(&other)
                            .expect("key")
                            .trim()
                            .to_owned(),
                    };
                    (key, to_json(value))
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => intrinsic(&tagged.tag.to_string(), to_json(tagged.value)),
    }
}

/// A CloudFormation short tag in its long form: `!Ref X` is `{"Ref": "X"}`,
/// `!GetAtt X.Arn` is `{"Fn::GetAtt": ["X", "Arn"]}`, `!Sub s` is `{"Fn::Sub": s}`.
fn intrinsic(tag: &str, value: Value) -> Value {
    let name = tag.trim_start_matches('!');
    match (name, value) {
        ("Ref", value) => json!({ "Ref": value }),
        ("Condition", value) => json!({ "Condition": value }),
        ("GetAtt", Value::String(path)) => {
            let (resource, attribute) = path.split_once('.').unwrap_or((&path, ""));
            json!({ "Fn::GetAtt": [resource, attribute] })
        }
        (name, value) => json!({ format!("Fn::{name}"): value }),
    }
}

fn resources(template: &Value) -> &serde_json::Map<String, Value> {
    template["Resources"]
        .as_object()
        .expect("the template has Resources")
}

/// The logical id of the one Lambda function.
fn function_id(template: &Value) -> String {
    let ids: Vec<&String> = resources(template)
        .iter()
        .filter(|(_, resource)| resource["Type"] == "AWS::Serverless::Function")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), 1, "one function: {ids:?}");
    ids[0].clone()
}

/// A single value or a list of them, as IAM and SAM both allow.
fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The logical id a `{"Ref": id}` names.
fn ref_target(value: &Value) -> Option<&str> {
    value.get("Ref")?.as_str()
}

/// The logical id a `{"Fn::GetAtt": [id, "Arn"]}` names.
fn arn_of(value: &Value) -> Option<&str> {
    let getatt = value.get("Fn::GetAtt")?;
    match getatt.as_array()?.as_slice() {
        [id, attribute] if attribute == "Arn" => id.as_str(),
        _ => None,
    }
}

/// The template string of a `Fn::Sub`, in either of its forms.
fn sub_string(value: &Value) -> Option<&str> {
    match value.get("Fn::Sub")? {
        Value::String(s) => Some(s),
        Value::Array(items) => items.first()?.as_str(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// The checker
// ---------------------------------------------------------------------------

/// What one granted action may be used on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    UsersTable,
    TasksTable,
    ThisFunction,
    FailureQueue,
}

/// Every action the function needs, lowercase (IAM action names are
/// case-insensitive), and the one resource it needs it on.
const NEEDED: &[(&str, Target)] = &[
    ("dynamodb:scan", Target::UsersTable),
    ("dynamodb:getitem", Target::TasksTable),
    ("dynamodb:putitem", Target::TasksTable),
    ("dynamodb:updateitem", Target::TasksTable),
    ("lambda:invokefunction", Target::ThisFunction),
    ("sqs:sendmessage", Target::FailureQueue),
];

/// The only managed policy the function may have: CloudWatch Logs.
fn is_basic_execution_role(policy: &Value) -> bool {
    const NAME: &str = "AWSLambdaBasicExecutionRole";
    let arn = match policy {
        Value::String(s) => s.as_str(),
        other => sub_string(other).unwrap_or_default(),
    };
    arn == NAME
        || arn == format!("arn:aws:iam::aws:policy/service-role/{NAME}")
        || arn == format!("arn:${{AWS::Partition}}:iam::aws:policy/service-role/{NAME}")
}

/// The function's own resources, as the template names them.
struct Scope {
    function_id: String,
    /// The `FunctionName` as a `Fn::Sub` template string (a plain name is its own template).
    function_name: Option<String>,
    users_table: Option<String>,
    tasks_table: Option<String>,
    failure_queue: Option<String>,
}

impl Scope {
    fn of(template: &Value, function_id: &str) -> Self {
        let function = &template["Resources"][function_id]["Properties"];
        let variables = &function["Environment"]["Variables"];
        let table = |variable: &str| {
            ref_target(&variables[variable])
                .filter(|id| template["Resources"][*id]["Type"] == "AWS::DynamoDB::Table")
                .map(str::to_owned)
        };
        let name = &function["FunctionName"];
        Self {
            function_id: function_id.to_owned(),
            function_name: name
                .as_str()
                .or_else(|| sub_string(name))
                .map(str::to_owned),
            users_table: table("USERS_TABLE"),
            tasks_table: table("TASKS_TABLE"),
            failure_queue: arn_of(
                &function["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"],
            )
            .filter(|id| template["Resources"][*id]["Type"] == "AWS::SQS::Queue")
            .map(str::to_owned),
        }
    }

    /// Which of the function's own resources `resource` names, or why it names none.
    fn target_of(&self, resource: &Value) -> Result<Target, String> {
        let table_or_queue = |id: &str| {
            if Some(id) == self.users_table.as_deref() {
                Ok(Target::UsersTable)
            } else if Some(id) == self.tasks_table.as_deref() {
                Ok(Target::TasksTable)
            } else if Some(id) == self.failure_queue.as_deref() {
                Ok(Target::FailureQueue)
            } else if id == self.function_id {
                Err(format!(
                    "{resource} refers to the function itself: a circular dependency (name it by its fixed FunctionName)"
                ))
            } else {
                Err(format!(
                    "{resource} is not one of the function's own resources"
                ))
            }
        };
        if let Some(id) = arn_of(resource) {
            return table_or_queue(id);
        }
        if let Some(sub) = sub_string(resource) {
            if sub.contains('*') || sub.contains('?') {
                return Err(format!("{resource} has a wildcard"));
            }
            if let Some(id) = sub
                .strip_prefix("${")
                .and_then(|rest| rest.strip_suffix(".Arn}"))
            {
                return table_or_queue(id);
            }
            const ACCOUNT: &str =
                "arn:${AWS::Partition}:{service}:${AWS::Region}:${AWS::AccountId}:";
            let table_prefix = ACCOUNT.replace("{service}", "dynamodb") + "table/${";
            if let Some(id) = sub
                .strip_prefix(&table_prefix)
                .and_then(|rest| rest.strip_suffix('}'))
            {
                return table_or_queue(id);
            }
            let function_prefix = ACCOUNT.replace("{service}", "lambda") + "function:";
            if let (Some(name), Some(own)) =
                (sub.strip_prefix(&function_prefix), &self.function_name)
            {
                return if name == own {
                    Ok(Target::ThisFunction)
                } else {
                    Err(format!("{resource} is not this function ({own})"))
                };
            }
            return Err(format!(
                "{resource} is not an ARN of the function's own resources"
            ));
        }
        match resource {
            Value::String(s) if s == "*" => Err("Resource \"*\"".to_owned()),
            Value::String(s) => Err(format!(
                "{s:?} is a fixed ARN, not a resource of this template"
            )),
            other => Err(format!("{other} is not a resource ARN this checker knows")),
        }
    }
}

/// Every way the function's permissions are broader than it needs, or escape
/// this checker. Empty means least privilege.
fn policy_violations(template: &Value) -> Vec<String> {
    let mut violations = Vec::new();
    let function_id = function_id(template);
    let scope = Scope::of(template, &function_id);
    let function = &template["Resources"][function_id.as_str()];
    let properties = &function["Properties"];

    if scope.users_table.is_none() || scope.tasks_table.is_none() {
        violations
            .push("USERS_TABLE and TASKS_TABLE must each !Ref a table of the template".into());
    }
    if !properties["Role"].is_null() {
        violations.push("Role replaces the checked Policies with an unchecked role".into());
    }
    if !function["Connectors"].is_null() {
        violations.push("Connectors grant permissions outside Policies".into());
    }
    let globals = &template["Globals"]["Function"];
    if !globals["Policies"].is_null() || !globals["Role"].is_null() {
        violations.push("Globals grant permissions outside the function's Policies".into());
    }
    for (id, resource) in resources(template) {
        let kind = resource["Type"].as_str().unwrap_or_default();
        if kind.starts_with("AWS::IAM::") || kind == "AWS::Serverless::Connector" {
            violations.push(format!(
                "{id} ({kind}) grants permissions outside the function's Policies"
            ));
        }
    }

    for policy in one_or_many(&properties["Policies"]) {
        if is_basic_execution_role(policy) {
            continue;
        }
        let Some(object) = policy.as_object() else {
            violations.push(format!(
                "managed policy {policy} is not AWSLambdaBasicExecutionRole"
            ));
            continue;
        };
        if !object.contains_key("Statement") {
            let names: Vec<&String> = object.keys().collect();
            violations.push(format!(
                "SAM policy template {names:?} grants more than the function needs: write the statement"
            ));
            continue;
        }
        for statement in one_or_many(&policy["Statement"]) {
            check_statement(&scope, statement, &mut violations);
        }
    }
    violations
}

fn check_statement(scope: &Scope, statement: &Value, violations: &mut Vec<String>) {
    let sid = statement["Sid"].as_str().unwrap_or("(no Sid)");
    match statement["Effect"].as_str() {
        Some("Deny") => return,
        Some("Allow") => {}
        other => violations.push(format!("{sid}: Effect {other:?}")),
    }
    for key in ["NotAction", "NotResource", "NotPrincipal"] {
        if !statement[key].is_null() {
            violations.push(format!("{sid}: {key} grants everything else"));
        }
    }
    let resources: Vec<Result<Target, String>> = one_or_many(&statement["Resource"])
        .into_iter()
        .map(|resource| scope.target_of(resource))
        .collect();
    if resources.is_empty() {
        violations.push(format!("{sid}: no Resource"));
    }
    for resource in &resources {
        if let Err(why) = resource {
            violations.push(format!("{sid}: {why}"));
        }
    }
    for action in one_or_many(&statement["Action"]) {
        let Some(action) = action.as_str() else {
            violations.push(format!("{sid}: action {action} is not a literal name"));
            continue;
        };
        if action.contains('*') || action.contains('?') {
            violations.push(format!("{sid}: action {action} has a wildcard"));
            continue;
        }
        let Some((_, needed_on)) = NEEDED
            .iter()
            .find(|(needed, _)| needed.eq_ignore_ascii_case(action))
        else {
            violations.push(format!(
                "{sid}: action {action} is not one the function needs"
            ));
            continue;
        };
        for target in resources.iter().flatten() {
            if target != needed_on {
                violations.push(format!(
                    "{sid}: {action} on {target:?}, which needs it only on {needed_on:?}"
                ));
            }
        }
    }
}

/// Every (action, resource) the policies grant, for the completeness check.
fn grants(template: &Value) -> BTreeSet<(String, Target)> {
    let scope = Scope::of(template, &function_id(template));
    let properties = &template["Resources"][scope.function_id.as_str()]["Properties"];
    let mut grants = BTreeSet::new();
    for policy in one_or_many(&properties["Policies"]) {
        for statement in one_or_many(&policy["Statement"]) {
            if statement["Effect"] != "Allow" {
                continue;
            }
            for action in one_or_many(&statement["Action"]) {
                for resource in one_or_many(&statement["Resource"]) {
                    if let (Some(action), Ok(target)) = (action.as_str(), scope.target_of(resource))
                    {
                        grants.insert((action.to_ascii_lowercase(), target));
                    }
                }
            }
        }
    }
    grants
}

// ---------------------------------------------------------------------------
// The template
// ---------------------------------------------------------------------------

#[test]
fn the_function_policies_grant_nothing_broader_than_the_function_needs() {
    let violations = policy_violations(&parse(TEMPLATE));
    assert_eq!(violations, Vec::<String>::new());
}

#[test]
fn the_function_policies_grant_every_call_the_code_makes() {
    // SAM adds sqs:SendMessage on the on-failure queue itself; the rest must be written.
    let expected: BTreeSet<(String, Target)> = NEEDED
        .iter()
        .filter(|(_, target)| *target != Target::FailureQueue)
        .map(|(action, target)| ((*action).to_owned(), *target))
        .collect();
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
        (".invoke()", "lambda:invokefunction"),
        (".invoke_async()", "lambda:invokeasync"),
        (".invoke_with_response_stream()", "lambda:invokefunction"),
    ];
    let mut code = String::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                code += &std::fs::read_to_string(&path).expect("source");
            }
        }
    }
    assert!(code.contains("fn main()"), "src/ read");
    let called: BTreeSet<&str> = OPERATIONS
        .iter()
        .filter(|(call, _)| code.contains(call))
        .map(|(_, action)| *action)
        .collect();
    let granted: BTreeSet<&str> = expected.iter().map(|(action, _)| action.as_str()).collect();
    assert_eq!(called, granted);
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
        assert_eq!(
            properties["AttributeDefinitions"],
            json!([{"AttributeName": key, "AttributeType": "S"}]),
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

// ---------------------------------------------------------------------------
// The checker proves itself
// ---------------------------------------------------------------------------

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
fn with_statement(action: &str, f: impl FnOnce(&mut Value)) -> Value {
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
    // The basic execution role, SendMessage on the failure queue and a Deny
    // narrow nothing: the checker lets them through.
    let mut template = with_policy(json!("AWSLambdaBasicExecutionRole"));
    let id = function_id(&template);
    template["Resources"][id.as_str()]["Properties"]["Policies"]
        .as_array_mut()
        .expect("list")
        .push(json!({"Statement": [
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["TaskFailureQueue", "Arn"]}},
            {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
        ]}));
    assert_eq!(policy_violations(&template), Vec::<String>::new());
}
