//! What SAM generates from the template: the role and the resource policy.

use super::*;

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
pub(super) const SAM_MANAGED_POLICIES: &[&str] = &[
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
];

/// `template_yaml` as SAM translates it to CloudFormation.
pub(super) fn sam_translate(template_yaml: &str) -> Value {
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
pub(super) fn generated_role_violations(template_yaml: &str) -> Vec<String> {
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
