"""Just enough CloudFormation and IAM to read the packaged template in tests: resolve the
intrinsic functions it uses for one imagined account and region, and decide whether a role's
policy allows an action on a resource (Allow statements with Action and Resource only; the
tests refuse anything else, so this small evaluator cannot be fooled by Deny, NotAction or
conditions)."""
from __future__ import annotations

import re
from fnmatch import fnmatchcase

PARTITION, REGION, ACCOUNT = "aws", "eu-west-1", "123456789012"
PSEUDO = {"AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
          "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "studio-credits"}
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


class Template:
    def __init__(self, doc: dict):
        self.doc = doc
        self.resources: dict = doc["Resources"]
        self.parameters: dict = doc.get("Parameters", {})

    def of_type(self, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.resources.items() if v["Type"] == type_}

    # --- intrinsic functions -------------------------------------------------------------------

    def value(self, v):
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict) and len(v) == 1:
            (fn, arg), = v.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::GetAtt":
                name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(name, attr)
            if fn == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return _SUB.sub(lambda m: str(self.value(extra[m[1]]) if m[1] in extra else self._sub_name(m[1])), text)
            if fn == "Fn::If":
                cond, yes, no = arg
                return self.value(yes if self.condition(cond) else no)
            if fn == "Fn::Equals":
                a, b = arg
                return self.value(a) == self.value(b)
            if fn.startswith("Fn::"):
                raise NotImplementedError(f"{fn} in {v}")
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        return v

    def condition(self, name: str) -> bool:
        return bool(self.value(self.doc["Conditions"][name]))

    def _sub_name(self, name: str):
        return self.getatt(*name.split(".", 1)) if "." in name else self.ref(name)

    def ref(self, name: str):
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]["Default"]
        r = self.resources[name]
        props = r.get("Properties", {})
        if r["Type"] == "AWS::DynamoDB::Table":
            return self.value(props["TableName"])
        if r["Type"] == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.value(props['QueueName'])}"
        if r["Type"] == "AWS::Serverless::Function":
            return self.value(props.get("FunctionName", name))
        return name

    def getatt(self, name: str, attr: str):
        r = self.resources[name]
        props = r.get("Properties", {})
        if r["Type"] == "AWS::SQS::Queue":
            queue = self.value(props["QueueName"])
            return {"Arn": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{queue}", "QueueName": queue}[attr]
        if r["Type"] == "AWS::DynamoDB::Table" and attr == "Arn":
            return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{self.ref(name)}"
        if r["Type"] == "AWS::Serverless::Function" and attr == "Arn":
            return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{self.ref(name)}"
        if r["Type"] == "AWS::IAM::Role" and attr == "Arn":
            return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}"
        raise NotImplementedError(f"GetAtt {name}.{attr}")

    # --- functions and their roles ---------------------------------------------------------------

    def functions(self) -> dict[str, dict]:
        return self.of_type("AWS::Serverless::Function")

    def role_of(self, function: str) -> str:
        role = self.resources[function]["Properties"]["Role"]
        assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{function}: role is not from this template: {role}"
        return role["Fn::GetAtt"][0]

    def statements_of(self, function: str) -> list[dict]:
        """The resolved statements of every inline policy of the function's role."""
        props = self.resources[self.role_of(function)]["Properties"]
        assert not props.get("ManagedPolicyArns"), f"{function}: managed policies are not least privilege"
        return [self.value(s) for p in props.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def check_simple(statements: list[dict]) -> None:
    """Only what `allows` understands: Allow, Action, Resource (no Deny, Not*, Condition, Principal)."""
    for s in statements:
        assert s["Effect"] == "Allow", s
        assert set(s) <= {"Sid", "Effect", "Action", "Resource"}, f"unsupported keys in {s}"


def allows(statements: list[dict], action: str, resource: str) -> bool:
    """IAM's matching for Allow statements: actions case-insensitive, `*` and `?` wildcards in both."""
    for s in statements:
        if s["Effect"] != "Allow":
            continue
        if any(fnmatchcase(action.lower(), a.lower()) for a in as_list(s["Action"])) and \
                any(fnmatchcase(resource, r) for r in as_list(s["Resource"])):
            return True
    return False


def granted_actions(statements: list[dict], service: str) -> set[str]:
    return {a for s in statements for a in as_list(s["Action"]) if a.lower().startswith(f"{service}:")}


def resources_for(statements: list[dict], service: str) -> set[str]:
    return {r for s in statements if any(a.lower().startswith(f"{service}:") for a in as_list(s["Action"]))
            for r in as_list(s["Resource"])}
