"""Settings from the environment, read once per process (a Lambda cold start)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

LOCAL_STAGES = frozenset({"local", "test", "dev"})
# Defaults that only the local stage may fall back on; `make run` prints them.
LOCAL_DEFAULTS = {
    "AUTH_DEV_SECRET": "local-dev-secret-not-for-any-deployed-stage",
    "STRIPE_WEBHOOK_SECRET": "whsec_local_stand_in_secret",
}


@dataclass(frozen=True)
class Settings:
    stage: str
    table_name: str
    region: str
    dynamodb_endpoint: str | None  # set only for the embedded store
    auth_dev_secret: str | None  # HS256 dev tokens; refused in prod
    auth_issuer: str | None
    auth_audience: str
    auth_jwks_url: str | None
    stripe_secret_key: str | None
    stripe_webhook_secrets: tuple[str, ...]
    public_url: str
    max_body_bytes: int
    renewal_queue: str  # SQS queue the daily job fans out to on busy days
    standin_delivery: str  # the Stripe stand-in sends events: "http" (make run) or "inprocess"

    @property
    def is_local(self) -> bool:
        return self.stage in LOCAL_STAGES

    @property
    def dev_tokens_allowed(self) -> bool:
        return self.is_local and bool(self.auth_dev_secret)


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def defaulted(env=os.environ) -> dict[str, str]:
    """The local defaults in force because the environment left them unset."""
    if env.get("STAGE", "local") != "local":
        return {}
    return {k: v for k, v in LOCAL_DEFAULTS.items() if not env.get(k)}


# Secrets a deployed stage reads from SSM Parameter Store (SecureString) at cold start, named by
# these variables (e.g. STRIPE_SECRET_KEY_PARAM=/studio-credits/prod/stripe-secret-key), instead
# of plain environment values.
SSM_SECRETS = {"STRIPE_SECRET_KEY_PARAM": "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET_PARAM": "STRIPE_WEBHOOK_SECRET"}


def in_lambda(env=os.environ) -> bool:
    """Running in AWS Lambda (not in `chalice package`/`deploy` importing app.py, nor locally)."""
    return bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))


def ssm_secrets(env, client=None) -> dict[str, str]:
    """The secrets the environment names, as their variables: one GetParameters call, inside
    Lambda only (packaging imports app.py with the stage's variables and no AWS access)."""
    names = {env[param]: var for param, var in SSM_SECRETS.items() if env.get(param)}
    if not names or (client is None and not in_lambda(env)):
        return {}
    if client is None:
        import botocore.session

        client = botocore.session.get_session().create_client("ssm")
    answer = client.get_parameters(Names=list(names), WithDecryption=True)
    if answer.get("InvalidParameters"):  # a deployed stage without its secrets must not start
        raise RuntimeError(f"Missing SSM parameters: {', '.join(sorted(answer['InvalidParameters']))}")
    return {names[p["Name"]]: p["Value"] for p in answer["Parameters"]}


def from_env(env: os._Environ | dict = os.environ) -> Settings:
    env = {**defaulted(env), **env}
    env = {**env, **ssm_secrets(env)}
    return Settings(
        stage=env.get("STAGE", "local"),
        table_name=env.get("TABLE_NAME", "credits"),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "eu-west-1",
        dynamodb_endpoint=env.get("DYNAMODB_ENDPOINT") or None,
        auth_dev_secret=env.get("AUTH_DEV_SECRET") or None,
        auth_issuer=env.get("AUTH_ISSUER") or None,
        auth_audience=env.get("AUTH_AUDIENCE") or "studio-credits",
        auth_jwks_url=env.get("AUTH_JWKS_URL") or None,
        stripe_secret_key=env.get("STRIPE_SECRET_KEY") or None,
        stripe_webhook_secrets=_split(env.get("STRIPE_WEBHOOK_SECRET")),
        public_url=(env.get("PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
        max_body_bytes=int(env.get("MAX_BODY_BYTES", "65536")),
        renewal_queue=env.get("RENEWAL_QUEUE", "studio-credits-renewals"),
        standin_delivery=env.get("STANDIN_DELIVERY", "inprocess"),
    )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return from_env()


def reload() -> Settings:
    """Re-read the environment (tests and the local server change it before serving)."""
    settings.cache_clear()
    return settings()
