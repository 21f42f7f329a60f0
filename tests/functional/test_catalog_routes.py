"""GET /v1/catalog and POST /v1/estimate: open to anyone, shaped as API.md says."""
from __future__ import annotations

import pytest

from tests.functional.test_charges import error


def test_catalog_is_public_and_shaped(api):
    r = api.get("/v1/catalog")
    assert r.status_code == 200, r.body
    c = r.json
    assert {"plans", "packs", "services"} <= set(c)
    for p in c["plans"]:
        assert {"id", "name", "workspace_kind", "credits_per_cycle", "prices"} <= set(p)
        assert isinstance(p["name"], str) and p["name"]
        for interval, price in p["prices"].items():
            assert interval in ("month", "year")
            assert set(price) >= {"price_id", "amount", "currency"}
            assert isinstance(price["amount"], int) and isinstance(price["price_id"], str)
    for k in c["packs"]:
        assert {"id", "credits", "price_id", "amount", "currency"} <= set(k)
    for s in c["services"]:
        assert {"id", "free"} <= set(s)
        assert isinstance(s["free"], bool)
    # Works the same with a token.
    assert api.get("/v1/catalog", "alice").json == c


def test_catalog_plans_as_product_md(api):
    plans = {p["id"]: p for p in api.get("/v1/catalog").json["plans"]}
    assert list(plans) == ["free", "creator", "pro", "team", "enterprise"]
    assert plans["free"]["credits_per_cycle"] == 50 and plans["free"]["prices"] == {}
    assert plans["creator"]["credits_per_cycle"] == 500
    assert plans["pro"]["credits_per_cycle"] == 2000
    assert plans["team"]["credits_per_cycle"] == 6000
    assert plans["enterprise"]["credits_per_cycle"] is None
    amounts = {pid: {i: (pr["amount"], pr["currency"]) for i, pr in p["prices"].items()} for pid, p in plans.items()}
    assert amounts["creator"] == {"month": (1200, "eur"), "year": (9900, "eur")}
    assert amounts["pro"] == {"month": (2900, "eur"), "year": (29000, "eur")}
    assert amounts["team"] == {"month": (7900, "eur"), "year": (79000, "eur")}
    assert plans["creator"]["workspace_kind"] == "personal" and plans["pro"]["workspace_kind"] == "personal"
    assert plans["team"]["workspace_kind"] == "team" and plans["enterprise"]["workspace_kind"] == "team"


def test_catalog_packs_as_product_md(api):
    packs = api.get("/v1/catalog").json["packs"]
    assert sorted((k["credits"], k["amount"], k["currency"]) for k in packs) == [(1000, 1200, "eur"),
                                                                                  (5000, 5000, "eur")]


def test_catalog_price_ids_are_unique(api):
    c = api.get("/v1/catalog").json
    ids = [pr["price_id"] for p in c["plans"] for pr in p["prices"].values()] + [k["price_id"] for k in c["packs"]]
    assert len(ids) == len(set(ids)) == 8


def test_catalog_services(api):
    services = {s["id"]: s for s in api.get("/v1/catalog").json["services"]}
    assert set(services) == {"image", "video", "audio", "avatar", "background_removal", "upscale", "local_edit"}
    assert {sid for sid, s in services.items() if s["free"]} == {"background_removal", "upscale", "local_edit"}


# --- estimate -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "service, options, credits",
    [
        ("image", {}, 10),
        ("image", {"quality": "hd"}, 20),
        ("image", {"quality": "ultra", "count": 8}, 320),
        ("video", {"seconds": 1}, 50),
        ("video", {"seconds": 5}, 50),
        ("video", {"seconds": 6}, 100),
        ("video", {"resolution": "1080p", "seconds": 6}, 200),
        ("audio", {"seconds": 30}, 10),
        ("audio", {"seconds": 31}, 20),
        ("avatar", {}, 100),
    ],
)
def test_estimate(api, service, options, credits):
    r = api.post("/v1/estimate", body={"service": service, "options": options})
    assert r.status_code == 200, r.body
    assert r.json == {"service": service, "credits": credits, "free": False}


@pytest.mark.parametrize("service", ["background_removal", "upscale", "local_edit"])
def test_estimate_free(api, service):
    r = api.post("/v1/estimate", body={"service": service, "options": {}})
    assert (r.status_code, r.json) == (200, {"service": service, "credits": 0, "free": True})


def test_estimate_without_options(api):
    r = api.post("/v1/estimate", body={"service": "avatar"})
    assert (r.status_code, r.json["credits"]) == (200, 100)


def test_estimate_with_a_token(api):
    r = api.post("/v1/estimate", "alice", {"service": "image", "options": {"count": 2}})
    assert (r.status_code, r.json["credits"]) == (200, 20)


@pytest.mark.parametrize(
    "body",
    [
        {"service": "sculpture", "options": {}},
        {"service": "", "options": {}},
        {"service": "Image", "options": {}},
        {"service": "image", "options": {"colour": "red"}},
        {"service": "image", "options": {"quality": "4k"}},
        {"service": "image", "options": {"count": 9}},
        {"service": "image", "options": {"count": 0}},
        {"service": "image", "options": {"count": True}},
        {"service": "image", "options": {"count": "2"}},
        {"service": "video", "options": {}},
        {"service": "video", "options": {"seconds": 301}},
        {"service": "audio", "options": {"seconds": 3601}},
        {"service": "avatar", "options": {"seconds": 5}},
        {"options": {}},
        {},
    ],
)
def test_estimate_refuses_bad_requests(api, body):
    error(api.post("/v1/estimate", body=body), 400, "invalid_request")
