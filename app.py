"""Wiring only: routes, parsing, authorisation hooks. The rules live in chalicelib."""
from chalice import Chalice, Cron

from chalicelib import api, clock, config, http
from chalicelib.catalog import catalog
from chalicelib.credits import models

app = Chalice(app_name="studio-credits")
models.bind(config.settings())


@app.middleware("all")
def observed(event, get_response):
    """Every invocation: its request id on every log line, its metrics flushed at the end."""
    from chalicelib.observe import flush, logger

    context = getattr(event, "context", None) or {}
    request_id = context.get("requestId") if isinstance(context, dict) else None
    lambda_context = getattr(app, "lambda_context", None)
    logger.append_keys(request_id=request_id or getattr(lambda_context, "aws_request_id", None))
    try:
        return get_response(event)
    finally:
        flush()
        logger.remove_keys(["request_id"])
req = lambda: app.current_request  # noqa: E731
# Bodies are parsed as JSON whatever their declared type (curl -d sends form-encoded).
BODY_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded"]


@app.route("/v1/catalog", methods=["GET"])
@http.handled
def get_catalog():
    return catalog().public()


@app.route("/v1/openapi.json", methods=["GET"])
@http.handled
def openapi():
    from chalicelib.openapi import document

    return document()


@app.route("/v1/estimate", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def estimate():
    return api.estimate(http.parse(req(), http.EstimateBody))


@app.route("/v1/me", methods=["GET"])
@http.handled
def me():
    return api.me(http.principal(req()), clock.now())


@app.route("/v1/workspaces", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def create_workspace():
    who = http.principal(req())
    body = http.parse(req(), http.WorkspaceBody)
    key = (req().headers or {}).get("idempotency-key")
    return http.json_response(api.create_workspace(who, body, key, clock.now()), 201)


@app.route("/v1/workspaces/{ws}/subscription", methods=["GET"])
@http.handled
def subscription(ws):
    return api.subscription(http.principal(req()), ws, clock.now())


@app.route("/v1/workspaces/{ws}/ledger", methods=["GET"])
@http.handled
def ledger(ws):
    who = http.principal(req())
    limit = http.query_int(req(), "limit", 50, 1, 100)
    params = req().query_params or {}
    return api.ledger_page(who, ws, limit, params.get("cursor"), clock.now(), member=params.get("member"))


@app.route("/v1/workspaces/{ws}/charges", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def charge(ws):
    who = http.principal(req())
    body = http.parse(req(), http.ChargeBody)
    key = (req().headers or {}).get("idempotency-key")
    return http.json_response(api.charge(who, ws, body, key, clock.now()), 201)


@app.route("/v1/workspaces/{ws}/holds", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def hold(ws):
    who = http.principal(req())
    body = http.parse(req(), http.HoldBody)
    key = (req().headers or {}).get("idempotency-key")
    return http.json_response(api.hold(who, ws, body, key, clock.now()), 201)


@app.route("/v1/workspaces/{ws}/holds/{hold_id}/capture", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def capture(ws, hold_id):
    who = http.principal(req())
    body = http.parse(req(), http.CaptureBody)
    return api.capture(who, ws, hold_id, body, clock.now())


@app.route("/v1/workspaces/{ws}/holds/{hold_id}/release", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def release(ws, hold_id):
    who = http.principal(req())
    http.parse(req(), http.Body)
    return api.release(who, ws, hold_id, clock.now())


@app.route("/v1/workspaces/{ws}/members/{user_id}", methods=["PUT"], content_types=BODY_TYPES)
@http.handled
def put_member(ws, user_id):
    from chalicelib import workspaces

    who, body = http.principal(req()), http.parse(req(), http.MemberBody)
    cap = body.cycle_cap if "cycle_cap" in body.model_fields_set else workspaces.KEEP
    return workspaces.put_member(who, ws, user_id, body.role, cap, clock.now())


@app.route("/v1/workspaces/{ws}/members/{user_id}", methods=["DELETE"])
@http.handled
def remove_member(ws, user_id):
    from chalice import Response
    from chalicelib import workspaces

    workspaces.remove_member(http.principal(req()), ws, user_id, clock.now())
    return Response(body="", status_code=204)


# --- billing -----------------------------------------------------------------------------------

def _billing():
    from chalicelib.billing import service

    return service


@app.route("/v1/workspaces/{ws}/checkout/subscription", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def checkout_subscription(ws):
    who, body = http.principal(req()), http.parse(req(), http.PlanBody)
    key = (req().headers or {}).get("idempotency-key")
    return http.json_response(_billing().checkout_subscription(who, ws, body.plan, body.interval, key, clock.now()), 201)


@app.route("/v1/workspaces/{ws}/checkout/topup", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def checkout_topup(ws):
    who, body = http.principal(req()), http.parse(req(), http.PackBody)
    key = (req().headers or {}).get("idempotency-key")
    return http.json_response(_billing().checkout_topup(who, ws, body.pack, key, clock.now()), 201)


@app.route("/v1/workspaces/{ws}/portal", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def portal(ws):
    who = http.principal(req())
    http.parse(req(), http.Body)
    return _billing().portal(who, ws, clock.now())


@app.route("/v1/workspaces/{ws}/subscription/change", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def change_subscription(ws):
    who, body = http.principal(req()), http.parse(req(), http.PlanBody)
    return _billing().change(who, ws, body.plan, body.interval, clock.now())


@app.route("/v1/workspaces/{ws}/subscription/cancel", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def cancel_subscription(ws):
    who, body = http.principal(req()), http.parse(req(), http.CancelBody)
    return _billing().cancel(who, ws, body.when, clock.now())


@app.route("/v1/workspaces/{ws}/subscription/resume", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def resume_subscription(ws):
    who = http.principal(req())
    http.parse(req(), http.Body)
    return _billing().resume(who, ws, clock.now())


@app.route("/stripe/webhook", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def stripe_webhook():
    from chalicelib.billing import webhook

    request = req()
    http.check_size(request)
    signature = (request.headers or {}).get("stripe-signature")
    return webhook.receive(request.raw_body or b"", signature, config.settings().stripe_webhook_secrets, clock.now())


# --- the Stripe stand-in's pages (local stages without a Stripe key; 404 otherwise) -------------

def _standin():
    from chalicelib.billing import gateway, standin

    if not isinstance(gateway.gateway(), standin.StandIn):
        from chalicelib.errors import NotFound

        raise NotFound("The Stripe stand-in is not running.")
    return standin


def _html(page: str, status: int = 200):
    from chalice import Response

    return Response(body=page, status_code=status, headers={"Content-Type": "text/html; charset=utf-8"})


def _redirect(url: str):
    from chalice import Response

    return Response(body="", status_code=303, headers={"Location": url})


@app.route("/standin/checkout/{session_id}", methods=["GET"])
@http.handled
def standin_checkout(session_id):
    return _html(_standin().checkout_page(session_id))


@app.route("/standin/checkout/{session_id}/pay", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def standin_pay(session_id):
    session = _standin().StandIn().complete(session_id)
    return _redirect(f"/standin/checkout/{session_id}" if session.get("expired") else session["success_url"])


@app.route("/standin/portal/{customer}", methods=["GET"])
@http.handled
def standin_portal(customer):
    return _html(_standin().portal_page(customer))


@app.route("/standin/portal/{customer}/{action}", methods=["POST"], content_types=BODY_TYPES)
@http.handled
def standin_portal_action(customer, action):
    _standin().portal_action(customer, action)
    return _redirect(f"/standin/portal/{customer}")


# Every day at 00:10 UTC: renew every cycle that has ended (fans out through SQS on busy days).
@app.schedule(Cron(10, 0, "*", "*", "?", "*"), name="daily_renewal")
def daily_renewal(event):
    from chalicelib.credits import renewal

    report = renewal.run(clock.now(), send=renewal.sqs_sender(config.settings().renewal_queue))
    app.log.info(report.summary())


@app.on_sqs_message(queue=config.settings().renewal_queue, batch_size=1, name="renewal_batch")
def renewal_batch(event):
    from chalicelib.credits import renewal

    for record in event:
        app.log.info(renewal.run_batch(record.body).summary())
