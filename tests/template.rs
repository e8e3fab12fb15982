//! template.yaml keeps to least privilege, keeps its data safe, and sets up
//! what the contract asks of the deployment: the failure queue's event source
//! mapping, the cost cap, tracing, access logs, alarms and the dashboard.
//!
//! The template is parsed as CloudFormation reads it (short tags such as
//! `!Sub`, `!GetAtt` and `!Ref` become their long `Fn::` forms), then
//! [`policy_violations`] checks every statement the function's `Policies` grant
//! against what the function does ([`NEEDED`]): Scan on its users table;
//! GetItem, PutItem and UpdateItem on its tasks table; InvokeFunction on
//! itself; ReceiveMessage, DeleteMessage and GetQueueAttributes on its failure
//! queue, for the mapping that feeds it; SendMessage on that queue; X-Ray's two
//! write actions, the one documented `Resource: "*"`; and the basic execution
//! role for its logs. The tables, the function's own name and the queue are
//! read from the template (the `USERS_TABLE`/`TASKS_TABLE` variables,
//! `FunctionName`, the on-failure destination), not assumed. The checker is
//! itself tested against deliberately broadened copies of the real policy.
//!
//! SAM adds grants of its own to the role it generates. So the role SAM
//! really generates is checked too, by running SAM's own translator from the
//! project's venv (`make .venv/.installed`): its inline statements pass the
//! same checker, and its managed policies are exactly the two SAM attaches
//! for logs and for `Tracing: Active`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

const TEMPLATE: &str = include_str!("../template.yaml");

// ---------------------------------------------------------------------------
// Reading the template
// ---------------------------------------------------------------------------

/// The template as JSON, every intrinsic function in its long form.
fn parse(yaml: &str) -> Value {
    let value: yaml_serde::Value = yaml_serde::from_str(yaml).expect("template.yaml is YAML");
    to_json(value)
}

fn to_json(value: yaml_serde::Value) -> Value {
    use yaml_serde::Value as Yaml;
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
                        other => yaml_serde::to_string(&other)
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
    /// The tasks table's index by owner (`GET /tasks`).
    TasksOwnerIndex,
    ThisFunction,
    FailureQueue,
    /// `Resource: "*"`: only for actions of a service without resource-level
    /// permissions, which the documentation asks for on `*`.
    AnyResource,
}

/// Who calls an action with the function's role, which decides who writes
/// the grant: the template's `Policies`, or SAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    /// The function's code (src/): the template grants it.
    Code,
    /// Lambda's poller for the failure queue's event source mapping: the
    /// template grants it (SAM's `Events: Type: SQS` would grant it on every
    /// queue of the account).
    FailureQueueMapping,
    /// Lambda's asynchronous invocation, sending a record to the on-failure
    /// destination: SAM grants it, on that queue only.
    OnFailureDestination,
    /// Lambda's active tracing: SAM attaches AWSXrayWriteOnlyAccess.
    Tracing,
}

/// Every action the function's role needs, lowercase (IAM action names are
/// case-insensitive), the one resource it needs it on, and who calls it.
const NEEDED: &[(&str, Target, Caller)] = &[
    ("dynamodb:scan", Target::UsersTable, Caller::Code),
    ("dynamodb:getitem", Target::TasksTable, Caller::Code),
    ("dynamodb:putitem", Target::TasksTable, Caller::Code),
    ("dynamodb:updateitem", Target::TasksTable, Caller::Code),
    ("dynamodb:query", Target::TasksOwnerIndex, Caller::Code),
    ("lambda:invokefunction", Target::ThisFunction, Caller::Code),
    (
        "sqs:receivemessage",
        Target::FailureQueue,
        Caller::FailureQueueMapping,
    ),
    (
        "sqs:deletemessage",
        Target::FailureQueue,
        Caller::FailureQueueMapping,
    ),
    (
        "sqs:getqueueattributes",
        Target::FailureQueue,
        Caller::FailureQueueMapping,
    ),
    (
        "sqs:sendmessage",
        Target::FailureQueue,
        Caller::OnFailureDestination,
    ),
    // The documented permissions for Lambda to send trace data. X-Ray has no
    // resource-level permissions for them: these two are the only grants on "*".
    (
        "xray:puttracesegments",
        Target::AnyResource,
        Caller::Tracing,
    ),
    (
        "xray:puttelemetryrecords",
        Target::AnyResource,
        Caller::Tracing,
    ),
];

/// The grants of [`NEEDED`] that `callers` make, as (action, target).
fn needed_by(callers: &[Caller]) -> BTreeSet<(String, Target)> {
    NEEDED
        .iter()
        .filter(|(_, _, caller)| callers.contains(caller))
        .map(|(action, target, _)| ((*action).to_owned(), *target))
        .collect()
}

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
    /// The parameter naming an existing users table instead (`ExistingUsersTable`),
    /// when `USERS_TABLE` is `!If [condition, !Ref <table>, !Ref <parameter>]`.
    users_table_parameter: Option<String>,
    tasks_table: Option<String>,
    failure_queue: Option<String>,
}

/// The `[condition, then, else]` of a `Fn::If`.
fn if_branches(value: &Value) -> Option<(&str, &Value, &Value)> {
    match value.get("Fn::If")?.as_array()?.as_slice() {
        [condition, then, otherwise] => Some((condition.as_str()?, then, otherwise)),
        _ => None,
    }
}

impl Scope {
    fn of(template: &Value, function_id: &str) -> Self {
        let function = &template["Resources"][function_id]["Properties"];
        let variables = &function["Environment"]["Variables"];
        // A table of the template, or (USERS_TABLE) the table of the template
        // when its condition holds and a parameter's table otherwise.
        let table = |variable: &str| {
            let value = &variables[variable];
            let value = if_branches(value).map_or(value, |(_, then, _)| then);
            ref_target(value)
                .filter(|id| template["Resources"][*id]["Type"] == "AWS::DynamoDB::Table")
                .map(str::to_owned)
        };
        let users_table_parameter = if_branches(&variables["USERS_TABLE"])
            .and_then(|(_, _, otherwise)| ref_target(otherwise))
            .filter(|name| template["Parameters"][*name].is_object())
            .map(str::to_owned);
        let name = &function["FunctionName"];
        Self {
            function_id: function_id.to_owned(),
            function_name: name
                .as_str()
                .or_else(|| sub_string(name))
                .map(str::to_owned),
            users_table: table("USERS_TABLE"),
            users_table_parameter,
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
        // `!If [condition, a, b]`: both branches must name the same resource.
        if let Some((_, then, otherwise)) = if_branches(resource) {
            let (then, otherwise) = (self.target_of(then)?, self.target_of(otherwise)?);
            return if then == otherwise {
                Ok(then)
            } else {
                Err(format!(
                    "{resource} names {then:?} or {otherwise:?} by its condition"
                ))
            };
        }
        let table_or_queue = |id: &str| {
            if Some(id) == self.users_table.as_deref()
                || Some(id) == self.users_table_parameter.as_deref()
            {
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
            // The tasks table's one index, by its name in src/tasks/store.rs.
            if let Some(id) = sub
                .strip_prefix("${")
                .and_then(|rest| rest.strip_suffix(".Arn}/index/by-owner"))
                && Some(id) == self.tasks_table.as_deref()
            {
                return Ok(Target::TasksOwnerIndex);
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
            Value::String(s) if s == "*" => Ok(Target::AnyResource),
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
    // SAM's pull event sources attach AWS managed policies whose actions are
    // on every stream, table or queue of the account.
    const PULL_EVENTS: &[&str] = &[
        "SQS",
        "Kinesis",
        "DynamoDB",
        "MSK",
        "MQ",
        "SelfManagedKafka",
        "DocumentDB",
    ];
    for (name, event) in properties["Events"].as_object().into_iter().flatten() {
        let kind = event["Type"].as_str().unwrap_or_default();
        if PULL_EVENTS.contains(&kind) {
            violations.push(format!(
                "event {name} ({kind}) makes SAM attach a managed policy on every resource of its kind: write an AWS::Lambda::EventSourceMapping and its statement"
            ));
        }
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
        let Some((_, needed_on, _)) = NEEDED
            .iter()
            .find(|(needed, _, _)| needed.eq_ignore_ascii_case(action))
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
            add_grants(&scope, statement, &mut grants);
        }
    }
    grants
}

/// What one statement allows, as (action, resource), into `grants`.
fn add_grants(scope: &Scope, statement: &Value, grants: &mut BTreeSet<(String, Target)>) {
    if statement["Effect"] != "Allow" {
        return;
    }
    for action in one_or_many(&statement["Action"]) {
        for resource in one_or_many(&statement["Resource"]) {
            if let (Some(action), Ok(target)) = (action.as_str(), scope.target_of(resource)) {
                grants.insert((action.to_ascii_lowercase(), target));
            }
        }
    }
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

// ---------------------------------------------------------------------------
// What SAM generates
// ---------------------------------------------------------------------------

/// SAM's translator, as `sam validate` and `sam deploy` run it, on the
/// template read from stdin; prints the CloudFormation it generates, as JSON.
const SAM_TRANSLATE: &str = r#"
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicyNames:
    # Asked only to resolve managed policies named without an ARN; the template names none.
    def load(self):
        return {}

template = yaml_parse(sys.stdin.read())
for resource in template["Resources"].values():
    if resource["Type"] == "AWS::Serverless::Function":
        # As sam validate does: the translator wants the S3 location sam deploy uploads to.
        resource["Properties"]["CodeUri"] = "s3://bucket/key"
print(json.dumps(transform(template, {}, NoManagedPolicyNames())))
"#;

/// The managed policies SAM attaches to the role it generates, and the only
/// ones the role may have: the basic execution role (CloudWatch Logs) and,
/// for `Tracing: Active`, X-Ray's write-only access. The latter allows
/// PutTraceSegments and PutTelemetryRecords, and also GetSamplingRules,
/// GetSamplingTargets and GetSamplingStatisticSummaries (reads of the
/// account's sampling rules, which the function does not need), all on "*":
/// SAM attaches it whenever tracing is on, and only a role of the template's
/// own could grant less.
const SAM_MANAGED_POLICIES: &[&str] = &[
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
];

/// `template_yaml` as SAM translates it to CloudFormation.
fn sam_translate(template_yaml: &str) -> Value {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "SAM's translator is not installed: run `make .venv/.installed` (`make test` does)"
    );
    let mut child = Command::new(python)
        .args(["-c", SAM_TRANSLATE])
        // For the partition of the ARNs only: the translator calls no AWS API.
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(template_yaml.as_bytes())
        .expect("the template reaches the translator");
    let output = child.wait_with_output().expect("the translator ends");
    assert!(
        output.status.success(),
        "SAM's translator failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the translator prints JSON")
}

/// Every way the role SAM generates for the function is broader than the
/// checker allows. Empty means least privilege as deployed.
fn generated_role_violations(template_yaml: &str) -> Vec<String> {
    let template = parse(template_yaml);
    let id = function_id(&template);
    let scope = Scope::of(&template, &id);
    let generated = sam_translate(template_yaml);
    let resources = resources(&generated);
    let mut violations = Vec::new();

    let role_id = format!("{id}Role");
    for (iam_id, resource) in resources {
        let kind = resource["Type"].as_str().unwrap_or_default();
        if kind.starts_with("AWS::IAM::") && *iam_id != role_id {
            violations.push(format!("SAM generates {iam_id} ({kind})"));
        }
    }
    if resources[id.as_str()]["Properties"]["Role"] != json!({"Fn::GetAtt": [role_id, "Arn"]}) {
        violations.push(format!("the function's role is not {role_id}"));
    }
    let role = &resources[role_id.as_str()]["Properties"];
    if role["AssumeRolePolicyDocument"]["Statement"]
        != json!([{"Action": ["sts:AssumeRole"], "Effect": "Allow",
                   "Principal": {"Service": ["lambda.amazonaws.com"]}}])
    {
        violations.push("the role may be assumed by more than Lambda".into());
    }
    if role["ManagedPolicyArns"] != json!(SAM_MANAGED_POLICIES) {
        violations.push(format!(
            "managed policies {} are not {SAM_MANAGED_POLICIES:?}",
            role["ManagedPolicyArns"]
        ));
    }
    let mut granted = BTreeSet::new();
    for policy in one_or_many(&role["Policies"]) {
        for statement in one_or_many(&policy["PolicyDocument"]["Statement"]) {
            check_statement(&scope, statement, &mut violations);
            add_grants(&scope, statement, &mut granted);
        }
    }
    // Tracing's grants come with the managed policy above; all others inline.
    let inline = needed_by(&[
        Caller::Code,
        Caller::FailureQueueMapping,
        Caller::OnFailureDestination,
    ]);
    if granted != inline {
        violations.push(format!(
            "the inline policies grant {granted:?}, not {inline:?}"
        ));
    }
    violations
}

#[test]
fn the_role_sam_generates_grants_no_more_than_the_checker_allows() {
    assert_eq!(generated_role_violations(TEMPLATE), Vec::<String>::new());
}

#[test]
fn only_this_api_may_invoke_the_function_through_a_resource_policy() {
    let template = parse(TEMPLATE);
    let api = resource_of_type(&template, "AWS::Serverless::HttpApi").0;
    let generated = sam_translate(TEMPLATE);
    let permissions: Vec<&Value> = resources(&generated)
        .values()
        .filter(|resource| resource["Type"] == "AWS::Lambda::Permission")
        .map(|resource| &resource["Properties"])
        .collect();
    // One for all the API's routes (the function's HttpApi events), this API's only.
    assert_eq!(permissions.len(), 1, "{permissions:?}");
    for permission in permissions {
        assert_eq!(permission["Action"], "lambda:InvokeFunction");
        assert_eq!(permission["Principal"], "apigateway.amazonaws.com");
        assert!(
            permission["SourceArn"]
                .to_string()
                .contains(&json!({"Ref": api}).to_string()),
            "{permission}"
        );
    }
}

// ---------------------------------------------------------------------------
// What the deployment sets up
// ---------------------------------------------------------------------------

/// The one resource of type `kind`: its logical id and its definition.
fn resource_of_type<'a>(template: &'a Value, kind: &str) -> (&'a str, &'a Value) {
    let found: Vec<(&String, &Value)> = resources(template)
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind}");
    (found[0].0.as_str(), found[0].1)
}

/// Every resource of type `kind`, by logical id.
fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(template)
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .map(|(id, resource)| (id.as_str(), resource))
        .collect()
}

/// The definition of the parameter `value` (a `!Ref`) names.
fn parameter_of<'a>(template: &'a Value, value: &Value) -> &'a Value {
    let name = ref_target(value).unwrap_or_else(|| panic!("{value} is a !Ref of a parameter"));
    let parameter = &template["Parameters"][name];
    assert!(parameter.is_object(), "{name} is a parameter");
    parameter
}

fn function_properties(template: &Value) -> &Value {
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
fn resolve(value: &Value, conditions: &[(&str, bool)]) -> Option<Value> {
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

// ---------------------------------------------------------------------------
// Reviewed as a production deploy would be
// ---------------------------------------------------------------------------

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
    let config = include_str!("../samconfig.toml");
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
    let readme = include_str!("../README.md");
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
