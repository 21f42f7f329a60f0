"""The published OpenAPI document and the app's routes describe the same API."""
from app import app


def test_every_route_is_documented_and_nothing_else(api):
    doc = api.get("/v1/openapi.json").json
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = {(path, method) for path, methods in app.routes.items() for method in methods
              if not path.startswith("/standin/")}  # the local stand-in's pages are not the API
    assert documented == served


def test_request_bodies_are_the_validated_models(api):
    doc = api.get("/v1/openapi.json").json
    charge = doc["paths"]["/v1/workspaces/{ws}/charges"]["post"]
    schema = doc["components"]["schemas"]["ChargeBody"]
    assert charge["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChargeBody")
    assert schema["required"] == ["service"] and schema["additionalProperties"] is False
    assert set(doc["components"]["schemas"]["Balance"]["required"]) == {"available", "plan", "topup", "held"}


def test_the_document_is_valid_openapi(api):
    from openapi_spec_validator import validate

    validate(api.get("/v1/openapi.json").json)
