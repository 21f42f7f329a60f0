import pytest

from chalicelib import config
from chalicelib.billing import gateway
from chalicelib.billing.gateway import refund_for_unused_time
from chalicelib.errors import Unavailable


def test_refund_is_the_unused_share_of_what_was_paid():
    # 30-day period paid 2900; cancelled after 12 days: 18/30 back.
    day = 86400
    assert refund_for_unused_time(2900, 0, 30 * day, 12 * day) == 1740
    assert refund_for_unused_time(2900, 0, 30 * day, 0) == 2900
    assert refund_for_unused_time(2900, 0, 30 * day, 30 * day) == 0
    assert refund_for_unused_time(2900, 0, 30 * day, 31 * day) == 0
    assert refund_for_unused_time(99, 0, 3, 1) == 66  # rounds down: never more than was paid


@pytest.mark.parametrize("stage", ["prod"])
def test_the_standin_never_runs_in_a_deployed_stage(monkeypatch, stage):
    monkeypatch.setenv("STAGE", stage)
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    config.reload()
    gateway.gateway.cache_clear()
    try:
        with pytest.raises(Unavailable):
            gateway.gateway()
    finally:
        monkeypatch.undo()
        config.reload()
        gateway.gateway.cache_clear()


def test_with_a_key_the_real_stripe_is_used(monkeypatch):
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_not_a_real_key")
    config.reload()
    gateway.gateway.cache_clear()
    try:
        assert isinstance(gateway.gateway(), gateway.StripeGateway)
    finally:
        monkeypatch.undo()
        config.reload()
        gateway.gateway.cache_clear()


def test_checkout_sessions_carry_what_the_webhook_relies_on():
    from unittest.mock import MagicMock

    g = gateway.StripeGateway("sk_test_not_a_real_key")
    g.client = MagicMock()
    g.client.v1.checkout.sessions.create.return_value = MagicMock(url="https://checkout.example/s", id="cs_1")
    url, sid = g.checkout(gateway.CheckoutRequest("ws_1", "cus_1", "subscription", "price_creator_month",
                                                  {"workspace_id": "ws_1", "kind": "subscription", "plan": "creator"},
                                                  "https://ok", "https://back", key="checkout-ws_1-k"))
    params, options = g.client.v1.checkout.sessions.create.call_args.args
    assert (url, sid) == ("https://checkout.example/s", "cs_1")
    assert params["client_reference_id"] == "ws_1"
    assert params["metadata"] == {"workspace_id": "ws_1", "kind": "subscription", "plan": "creator"}
    assert params["subscription_data"] == {"metadata": {"workspace_id": "ws_1"}}
    assert params["line_items"] == [{"price": "price_creator_month", "quantity": 1}]
    assert options == {"idempotency_key": "checkout-ws_1-k"}


def test_customers_are_created_once_per_workspace_at_stripe_too():
    from unittest.mock import MagicMock

    g = gateway.StripeGateway("sk_test_not_a_real_key")
    g.client = MagicMock()
    g.client.v1.customers.create.return_value = MagicMock(id="cus_9")
    assert g.create_customer("ws_1", "Team") == "cus_9"
    assert g.client.v1.customers.create.call_args.args[1] == {"idempotency_key": "customer-ws_1"}


def test_deployed_secrets_come_from_ssm_at_cold_start(monkeypatch):
    from moto import mock_aws

    with mock_aws():
        import boto3

        ssm = boto3.client("ssm", region_name="eu-west-1")
        ssm.put_parameter(Name="/studio-credits/prod/stripe-secret-key", Value="sk_live_x", Type="SecureString")
        ssm.put_parameter(Name="/studio-credits/prod/stripe-webhook-secret", Value="whsec_a,whsec_b",
                          Type="SecureString")
        env = {"STAGE": "prod", "STRIPE_SECRET_KEY_PARAM": "/studio-credits/prod/stripe-secret-key",
               "STRIPE_WEBHOOK_SECRET_PARAM": "/studio-credits/prod/stripe-webhook-secret"}
        assert config.from_env(env).stripe_secret_key is None  # not in Lambda: packaging, deploy
        s = config.from_env({**env, "AWS_LAMBDA_FUNCTION_NAME": "studio-credits-prod"})
        with pytest.raises(RuntimeError, match="Missing SSM parameters: /nope"):
            config.from_env({**env, "STRIPE_SECRET_KEY_PARAM": "/nope", "AWS_LAMBDA_FUNCTION_NAME": "f"})
    assert s.stripe_secret_key == "sk_live_x"
    assert s.stripe_webhook_secrets == ("whsec_a", "whsec_b")
