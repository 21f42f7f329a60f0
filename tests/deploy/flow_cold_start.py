"""A flow for the recorded run only (tests/deploy/conftest.py passes this file to pytest by
name; its name keeps `make test` from collecting it): a deployed API handler's cold start, which
reads the Stripe secrets from SSM Parameter Store. app.py is run as Lambda imports it, so its
requests are recorded as the handler's."""
from __future__ import annotations

import runpy

import pytest

from tests.deploy.record_calls import APP_PY

PARAMS = {"STRIPE_SECRET_KEY_PARAM": ("/studio-credits/test/stripe-secret-key", "sk_test_cold_start"),
          "STRIPE_WEBHOOK_SECRET_PARAM": ("/studio-credits/test/stripe-webhook-secret", "whsec_a,whsec_b")}


@pytest.fixture
def stage_secrets(moto_aws, monkeypatch):
    """Set-up, so not recorded: the parameters an operator puts in SSM, and their names in the environment."""
    import botocore.session

    from chalicelib import config

    ssm = botocore.session.get_session().create_client("ssm", region_name=config.settings().region)
    for var, (name, value) in PARAMS.items():
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
        monkeypatch.setenv(var, name)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "studio-credits-test")  # as the Lambda runtime sets it
    config.settings.cache_clear()
    yield
    monkeypatch.undo()
    config.reload()


def test_cold_start_reads_the_stage_secrets(stage_secrets):
    from chalicelib import config

    runpy.run_path(APP_PY, run_name="app_cold_start")
    s = config.settings()
    assert (s.stripe_secret_key, s.stripe_webhook_secrets) == ("sk_test_cold_start", ("whsec_a", "whsec_b"))
