"""Package a stage for CloudFormation and lint the result.

    python -m infra.package --stage prod [--out build/prod] [--no-lint]

1. `chalice package --stage <stage> --pkg-format cloudformation --merge-template infra/resources.json
   <out>`: Chalice's SAM template (functions, their roles from .chalice/policy-<stage>.json, the
   REST API, the schedule, the SQS event source) deep-merged with the project's own resources
   (the table, the renewal queue and its dead-letter queue, each function's environment).
2. Pins the packaged template to its stage: a rule accepts only that `Stage` parameter, the
   AUTH_*/PUBLIC_URL parameters default to the stage's values in .chalice/config.json, and the
   role policies' `arn:aws:<service>:*:*:` resources (the policy files are also used by `chalice
   deploy`, which knows no account) are narrowed to the stack's own partition, region and account.
3. Runs cfn-lint on <out>/sam.json.

Deploy the result with the AWS CLI, e.g.:
    aws cloudformation package --template-file build/prod/sam.json --s3-bucket BUCKET \
        --output-template-file build/prod/packaged.yaml
    aws cloudformation deploy --template-file build/prod/packaged.yaml --stack-name studio-credits-prod \
        --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MERGE_TEMPLATE = ROOT / "infra" / "resources.json"
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"
# CloudFormation parameter -> the environment variable whose stage value is its default.
PARAMETER_DEFAULTS = {
    "AuthIssuer": "AUTH_ISSUER",
    "AuthAudience": "AUTH_AUDIENCE",
    "AuthJwksUrl": "AUTH_JWKS_URL",
    "PublicUrl": "PUBLIC_URL",
}
_ANY_ACCOUNT_ARN = re.compile(r"^arn:aws:([a-z0-9-]+):\*:\*:(.+)$")


def stage_environment(stage: str, config_path: Path = CHALICE_CONFIG) -> dict[str, str]:
    """The stage's environment as Chalice computes it (top level, then the stage)."""
    config = json.loads(config_path.read_text())
    if stage not in config.get("stages", {}):
        raise SystemExit(f"No stage {stage!r} in {config_path}.")
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def run_chalice_package(stage: str, out: Path) -> None:
    # Chalice imports app.py to package it. Nothing from the caller's shell that names or holds
    # a secret reaches that import: it would read SSM, or end up nowhere useful.
    env = {k: v for k, v in os.environ.items() if not (k.endswith("_PARAM") or k.startswith("STRIPE_"))}
    # Chalice wants a region to build its clients; the template itself uses AWS::Region.
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "eu-west-1"))
    cmd = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())",
           "--project-dir", str(ROOT), "package", "--stage", stage, "--pkg-format", "cloudformation",
           "--merge-template", str(MERGE_TEMPLATE), str(out)]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def pin_arn(value):
    """"arn:aws:sqs:*:*:name" -> {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:name"}."""
    if isinstance(value, str):
        m = _ANY_ACCOUNT_ARN.match(value)
        if m and "${" not in value:
            return {"Fn::Sub": f"arn:${{AWS::Partition}}:{m[1]}:${{AWS::Region}}:${{AWS::AccountId}}:{m[2]}"}
        return value
    if isinstance(value, list):
        return [pin_arn(v) for v in value]
    return value


def pin_to_stage(template: dict, stage: str, environment: dict[str, str]) -> dict:
    params = template.setdefault("Parameters", {})
    params["Stage"]["Default"] = stage
    # A rule, not AllowedValues=[stage]: deploying this package under another stage's name fails
    # before anything is created, and the template keeps both branches of IsProd (cfn-lint W1028).
    template.setdefault("Rules", {})["PackagedStage"] = {"Assertions": [{
        "Assert": {"Fn::Equals": [{"Ref": "Stage"}, stage]},
        "AssertDescription": f"This template was packaged for the {stage} stage (python -m infra.package --stage {stage}).",
    }]}
    for name, var in PARAMETER_DEFAULTS.items():
        if var in environment:
            params[name]["Default"] = environment[var]
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if "Resource" in statement:
                    statement["Resource"] = pin_arn(statement["Resource"])
    return template


def lint(template_path: Path) -> subprocess.CompletedProcess:
    """cfn-lint from this interpreter's environment (a dependency of moto, installed by `make test`)."""
    return subprocess.run([sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
                           str(template_path)], capture_output=True, text=True)


def package(stage: str, out: Path) -> Path:
    out = out.resolve()
    run_chalice_package(stage, out)
    sam = out / "sam.json"
    template = pin_to_stage(json.loads(sam.read_text()), stage, stage_environment(stage))
    sam.write_text(json.dumps(template, indent=2) + "\n")
    return sam


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, choices=("dev", "prod"))
    parser.add_argument("--out", type=Path, help="output directory (default build/<stage>)")
    parser.add_argument("--no-lint", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "build" / args.stage
    sam = package(args.stage, out)
    environment = stage_environment(args.stage)
    placeholders = sorted(k for k, v in environment.items() if "example.com" in str(v))
    if placeholders:
        print(f"note: {', '.join(placeholders)} still hold example.com placeholders in .chalice/config.json; "
              f"override them with --parameter-overrides at deploy time or edit the stage.", file=sys.stderr)
    print(f"packaged {args.stage}: {sam} and {out / 'deployment.zip'}")
    if args.no_lint:
        return 0
    result = lint(sam)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    print(f"cfn-lint {sam}: {'clean' if result.returncode == 0 else f'exit {result.returncode}'}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
