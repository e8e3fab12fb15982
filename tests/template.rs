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

#[path = "template/checker.rs"]
mod checker;
#[path = "template/deployment.rs"]
mod deployment;
#[path = "template/grants.rs"]
mod grants;
#[path = "template/production.rs"]
mod production;
#[path = "template/sam_generated.rs"]
mod sam_generated;

use checker::with_statement;
use deployment::{function_properties, parameter_of, resolve, resource_of_type, resources_of_type};
use sam_generated::{SAM_MANAGED_POLICIES, generated_role_violations, sam_translate};

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
