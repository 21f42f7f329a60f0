"""The catalog: prices of actions as API.md's table gives them, and refusals of bad requests."""
from __future__ import annotations

import json

import pytest

from chalicelib import catalog as catalog_module
from chalicelib.catalog import load
from chalicelib.errors import InvalidRequest


@pytest.fixture(scope="module")
def cat():
    return load()  # the shipped catalog.json


def price(cat, service, options=None):
    return cat.price(service, options)[2]


# --- every cost in API.md's action table -------------------------------------------------------

@pytest.mark.parametrize(
    "options, credits",
    [
        ({}, 10),  # defaults: standard, count 1
        ({"quality": "standard"}, 10),
        ({"quality": "hd"}, 20),
        ({"quality": "ultra"}, 40),
        ({"count": 1}, 10),
        ({"count": 3}, 30),
        ({"quality": "hd", "count": 2}, 40),
        ({"quality": "ultra", "count": 8}, 320),
        ({"quality": "standard", "count": 8}, 80),
    ],
)
def test_image_prices(cat, options, credits):
    assert price(cat, "image", options) == credits


@pytest.mark.parametrize(
    "options, credits",
    [
        ({"seconds": 1}, 50),
        ({"seconds": 4}, 50),
        ({"seconds": 5}, 50),
        ({"seconds": 6}, 100),
        ({"seconds": 10}, 100),
        ({"seconds": 11}, 150),
        ({"seconds": 300}, 3000),
        ({"resolution": "720p", "seconds": 6}, 100),
        ({"resolution": "1080p", "seconds": 1}, 100),
        ({"resolution": "1080p", "seconds": 5}, 100),
        ({"resolution": "1080p", "seconds": 6}, 200),
        ({"resolution": "1080p", "seconds": 300}, 6000),
    ],
)
def test_video_prices_per_started_five_seconds(cat, options, credits):
    assert price(cat, "video", options) == credits


@pytest.mark.parametrize(
    "seconds, credits", [(1, 10), (29, 10), (30, 10), (31, 20), (60, 20), (61, 30), (3600, 1200)]
)
def test_audio_prices_per_started_thirty_seconds(cat, seconds, credits):
    assert price(cat, "audio", {"seconds": seconds}) == credits


def test_avatar_price(cat):
    assert price(cat, "avatar", {}) == 100
    assert price(cat, "avatar", None) == 100
    assert cat.service("avatar").free is False


@pytest.mark.parametrize("service", ["background_removal", "upscale", "local_edit"])
def test_free_services(cat, service):
    assert price(cat, service, {}) == 0
    assert cat.service(service).free is True


@pytest.mark.parametrize("service", ["image", "video", "audio", "avatar"])
def test_paid_services_are_not_free(cat, service):
    assert cat.service(service).free is False


def test_price_fills_in_defaults(cat):
    service, opts, credits = cat.price("image", {"quality": "hd"})
    assert service.id == "image"
    assert opts == {"quality": "hd", "count": 1}
    assert credits == 20
    assert cat.price("video", {"seconds": 7})[1] == {"resolution": "720p", "seconds": 7}


def test_normalized_options_give_one_fingerprint_for_one_action(cat):
    # Sending the default explicitly and leaving it out are the same action.
    assert cat.price("image", {})[1] == cat.price("image", {"quality": "standard", "count": 1})[1]


# --- refusals: unknown service, unknown option, bad value ----------------------------------------

@pytest.mark.parametrize("service", ["sculpture", "", "IMAGE", "image ", None, 5, ["image"], {"id": "image"}, True])
def test_unknown_service(cat, service):
    with pytest.raises(InvalidRequest):
        cat.price(service, {})


@pytest.mark.parametrize(
    "service, options",
    [
        ("image", {"colour": "red"}),
        ("image", {"quality": "hd", "size": 2}),
        ("avatar", {"seconds": 5}),
        ("upscale", {"factor": 2}),
        ("audio", {"resolution": "720p", "seconds": 5}),
        ("video", {"count": 1, "seconds": 5}),
    ],
)
def test_unknown_option(cat, service, options):
    with pytest.raises(InvalidRequest):
        cat.price(service, options)


@pytest.mark.parametrize(
    "service, options",
    [
        ("image", {"quality": "4k"}),
        ("image", {"quality": "HD"}),
        ("image", {"quality": 1}),
        ("image", {"quality": ["hd"]}),
        ("image", {"quality": None}),
        ("video", {"resolution": "480p", "seconds": 5}),
        ("video", {}),  # seconds has no default
        ("video", {"resolution": "720p"}),
        ("audio", {}),
    ],
)
def test_bad_choice_or_missing_required(cat, service, options):
    with pytest.raises(InvalidRequest):
        cat.price(service, options)


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("service, option", [("image", "count"), ("video", "seconds"), ("audio", "seconds")])
def test_bool_is_not_an_integer(cat, service, option, value):
    with pytest.raises(InvalidRequest):
        cat.price(service, {option: value})


@pytest.mark.parametrize("value", ["2", 2.0, 2.5, None, [2], {"n": 2}, float("nan"), float("inf")])
def test_integer_options_refuse_other_types(cat, value):
    with pytest.raises(InvalidRequest):
        cat.price("image", {"count": value})


@pytest.mark.parametrize(
    "service, options",
    [
        ("image", {"count": 0}),
        ("image", {"count": 9}),
        ("image", {"count": -1}),
        ("image", {"count": 10**30}),
        ("video", {"seconds": 0}),
        ("video", {"seconds": 301}),
        ("video", {"seconds": -5}),
        ("video", {"seconds": 10**30}),
        ("audio", {"seconds": 0}),
        ("audio", {"seconds": 3601}),
    ],
)
def test_out_of_range(cat, service, options):
    with pytest.raises(InvalidRequest):
        cat.price(service, options)


@pytest.mark.parametrize("options", ["hd", ["quality", "hd"], 5, True])
def test_options_must_be_an_object(cat, options):
    with pytest.raises(InvalidRequest):
        cat.price("image", options)


@pytest.mark.parametrize("service, options", [("image", {"count": 8}), ("video", {"seconds": 300}),
                                              ("audio", {"seconds": 3600}), ("image", {"count": 1}),
                                              ("video", {"seconds": 1}), ("audio", {"seconds": 1})])
def test_range_ends_are_allowed(cat, service, options):
    assert price(cat, service, options) > 0


# --- plans, packs, price ids --------------------------------------------------------------------

def test_plans_as_product_md(cat):
    assert [p.id for p in sorted(cat.plans.values(), key=lambda p: p.rank)] == [
        "free", "creator", "pro", "team", "enterprise"]
    assert cat.plan("free").credits_per_cycle == 50 and dict(cat.plan("free").prices) == {}
    assert cat.plan("creator").credits_per_cycle == 500
    assert cat.plan("creator").prices["month"].amount == 1200
    assert cat.plan("creator").prices["year"].amount == 9900
    assert cat.plan("pro").credits_per_cycle == 2000
    assert (cat.plan("pro").prices["month"].amount, cat.plan("pro").prices["year"].amount) == (2900, 29000)
    assert cat.plan("team").credits_per_cycle == 6000
    assert (cat.plan("team").prices["month"].amount, cat.plan("team").prices["year"].amount) == (7900, 79000)
    assert cat.plan("enterprise").credits_per_cycle is None
    assert cat.currency == "eur"
    assert all(p.rollover_cap == 0 for p in cat.plans.values())


def test_plan_workspace_kinds(cat):
    assert cat.plan("free").allows("personal") and cat.plan("free").allows("team")
    assert cat.plan("creator").allows("personal") and not cat.plan("creator").allows("team")
    assert cat.plan("pro").allows("personal") and not cat.plan("pro").allows("team")
    assert cat.plan("team").allows("team") and not cat.plan("team").allows("personal")
    assert cat.plan("enterprise").allows("team") and not cat.plan("enterprise").allows("personal")


def test_packs_as_product_md(cat):
    assert {(k.credits, k.amount) for k in cat.packs.values()} == {(1000, 1200), (5000, 5000)}


def test_unknown_plan_and_pack(cat):
    with pytest.raises(InvalidRequest):
        cat.plan("platinum")
    with pytest.raises(InvalidRequest):
        cat.pack("pack_3")


def test_price_ids_are_unique_and_recognised(cat):
    ids = [pr.price_id for p in cat.plans.values() for pr in p.prices.values()] + [
        k.price_id for k in cat.packs.values()]
    assert len(ids) == len(set(ids)) == 8
    for plan in cat.plans.values():
        for interval, pr in plan.prices.items():
            found = cat.by_price_id(pr.price_id)
            assert found[0].id == plan.id and found[1] == interval
    for pack in cat.packs.values():
        assert cat.by_price_id(pack.price_id) is pack
    assert cat.by_price_id("price_unknown") is None


# --- an operator edits data, not code -------------------------------------------------------------

def test_an_edited_catalog_file_changes_prices(tmp_path, monkeypatch):
    raw = json.loads(catalog_module.DEFAULT_PATH.read_text())
    for s in raw["services"]:
        if s["id"] == "avatar":
            s["pricing"]["credits"] = 150
        if s["id"] == "image":
            s["pricing"]["credits"]["hd"] = 25
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(raw))
    edited = load(path)
    assert edited.price("avatar", {})[2] == 150
    assert edited.price("image", {"quality": "hd", "count": 2})[2] == 50
    # CATALOG_PATH points the service at the file.
    monkeypatch.setenv("CATALOG_PATH", str(path))
    catalog_module.catalog.cache_clear()
    try:
        assert catalog_module.catalog().price("avatar", {})[2] == 150
    finally:
        monkeypatch.delenv("CATALOG_PATH")
        catalog_module.catalog.cache_clear()
    assert catalog_module.catalog().price("avatar", {})[2] == 100
