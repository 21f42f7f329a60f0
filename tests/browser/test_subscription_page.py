"""The Subscription and credits page, as a person uses it: every flow through the real API, the
local server and its Stripe stand-in, in headless Chromium. Each test signs in as its own person,
so each starts from a new personal workspace on Free with 50 credits."""
from __future__ import annotations

import re
from datetime import date

from dateutil.relativedelta import relativedelta
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS


def sign_in(page, user: str) -> None:
    page.goto("/")
    page.get_by_label("Person's id").fill(user)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#who-name")).to_have_text(f"Signed in as {user}")
    expect(page.locator("#available")).to_have_text("50")
    expect(page.locator("#ledger-rows tr")).to_have_count(1)  # the first grant


def pay_on_standin(page) -> None:
    expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    page.get_by_role("button", name="Pay").click()
    expect(page.locator("#notice")).to_contain_text("Payment received")


def subscribe(page, plan: str, interval: str = "monthly") -> None:
    page.locator(f"#plan-list button[data-plan='{plan}'][data-interval='{'year' if interval == 'annual' else 'month'}']").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("the 50 Free credits left expire")
    dialog.get_by_role("button", name="Go to payment").click()
    pay_on_standin(page)


def long_date(iso: str) -> str:
    d = date.fromisoformat(iso)
    return f"{d.day} {d:%B %Y}"


def test_a_top_up_bought_through_the_standin_lands_in_the_top_up_bucket(page):
    sign_in(page, "tess")
    page.get_by_role("button", name="Buy 1,000 credits for €12.00").click()
    expect(page).to_have_url(re.compile(r"/standin/checkout/cs_local_"))
    pay_on_standin(page)
    expect(page.locator("#available")).to_have_text("1,050")
    expect(page.locator("#bucket-plan")).to_have_text("50")
    expect(page.locator("#bucket-topup")).to_have_text("1,000")
    newest = page.locator("#ledger-rows tr").first
    expect(newest).to_have_attribute("data-kind", "topup")
    expect(newest.locator("td").nth(3)).to_have_text("+1,000")
    expect(newest.locator("td").nth(5)).to_have_text("1,050")
    expect(page).to_have_url(re.compile(r"/$"))  # the checkout's query is cleared from the address


def test_subscribing_to_creator_shows_500_plan_credits_and_manage_payments(page):
    sign_in(page, "cora")
    expect(page.get_by_role("button", name="Manage payments")).to_be_hidden()
    subscribe(page, "creator")
    expect(page.locator("#plan-name")).to_have_text("Creator (monthly)")
    expect(page.locator("#plan-status")).to_have_text("Active")
    expect(page.locator("#available")).to_have_text("500")
    expect(page.locator("#bucket-plan")).to_have_text("500")
    expect(page.locator("#bucket-topup")).to_have_text("0")
    expect(page.get_by_role("button", name="Manage payments")).to_be_visible()
    expect(page.locator("#ledger-rows tr")).to_have_count(3)
    kinds = page.locator("#ledger-rows tr").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds == ["grant", "expire", "grant"]  # Creator's 500, the Free 50 expired, the first 50


def test_cancel_at_period_end_shows_ending_with_the_date_and_resume_undoes_it(page, site):
    sign_in(page, "carl")
    subscribe(page, "creator")
    renews_on = page.locator("#renews-on time").get_attribute("datetime")
    page.get_by_role("button", name="Cancel at period end").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Credits keep renewing until then")
    dialog.get_by_role("button", name="Cancel at period end").click()
    status = page.locator("#plan-status")
    expect(status).to_have_text(f"Ending on {long_date(renews_on)} (then the Free plan)")
    expect(status.locator("time")).to_have_attribute("datetime", renews_on)
    ws = page.locator("#workspace").input_value()
    view = site.session("carl").get(f"{site.url}/v1/workspaces/{ws}/subscription").json()
    assert (view["status"], view["ends_on"]) == ("ending", renews_on)
    expect(page.locator("#available")).to_have_text("500")  # credits stay until the end
    page.get_by_role("button", name="Resume the plan").click()
    expect(status).to_have_text("Active")
    expect(page.get_by_role("button", name="Cancel at period end")).to_be_visible()


def test_running_out_of_credits_shows_the_402_and_the_way_out(page):
    sign_in(page, "olga")
    page.locator("#opt-image-quality").select_option("ultra")
    expect(page.locator("#estimate-image")).to_have_text("Costs 40 credits.")
    page.get_by_role("button", name="Generate image").click()
    expect(page.locator("#notice")).to_contain_text("Image generated: 40 credits (40 plan, 0 top-up). Available now: 10.")
    expect(page.locator("#available")).to_have_text("10")
    page.get_by_role("button", name="Generate image").click()
    notice = page.locator("#notice")
    expect(notice).to_have_class("error")
    expect(notice).to_contain_text("Not enough credits: this costs 40 credits and 10 are available.")
    expect(notice.get_by_role("link", name="buy a top-up pack")).to_have_attribute("href", "#packs")
    expect(notice.get_by_role("link", name="upgrade your plan")).to_have_attribute("href", "#plans")
    expect(page.locator("#available")).to_have_text("10")  # nothing deducted
    page.get_by_role("button", name="Run upscale (free)").click()  # free actions go on at any balance
    expect(notice).to_contain_text("Upscale done: it cost no credits. Available now: 10.")


def test_a_video_holds_its_estimate_then_captures_it(page):
    sign_in(page, "vito")
    page.locator("#opt-video-seconds").fill("5")
    page.locator("#opt-video-seconds").dispatch_event("change")
    expect(page.locator("#estimate-video")).to_have_text("Costs 50 credits.")
    page.get_by_role("button", name="Generate video").click()
    expect(page.locator("#notice")).to_contain_text("Video generated: 50 credits held, 50 captured, 0 returned. Available now: 0.")
    expect(page.locator("#ledger-rows tr")).to_have_count(3)
    kinds = page.locator("#ledger-rows tr").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds == ["capture", "hold", "grant"]


def test_a_downgrade_is_shown_as_pending_with_the_rule_and_can_be_withdrawn(page):
    sign_in(page, "dora")
    subscribe(page, "pro")
    expect(page.locator("#bucket-plan")).to_have_text("2,000")
    renews_on = page.locator("#renews-on time").get_attribute("datetime")
    page.get_by_role("button", name="Choose monthly: Creator, €12.00 / month").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading")).to_have_text("Downgrade to Creator (monthly)?")
    expect(dialog).to_contain_text(f"takes effect at the end of what you have paid for: {long_date(renews_on)}")
    dialog.get_by_role("button", name="Schedule the change").click()
    expect(page.locator("#pending")).to_have_text(f"Creator (monthly) from {long_date(renews_on)}")
    expect(page.locator("#plan-name")).to_have_text("Pro (monthly)")
    expect(page.locator("#bucket-plan")).to_have_text("2,000")
    page.get_by_role("button", name="Withdraw the change").click()
    expect(page.locator("#pending-row")).to_be_hidden()
    expect(page.locator("#notice")).to_contain_text("The change is withdrawn: you stay on Pro.")


def test_team_workspaces_switch_and_offer_team_plans(page):
    sign_in(page, "tina")
    page.get_by_text("New team workspace").click()
    page.get_by_label("Team name").fill("Studio Nine")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#notice")).to_contain_text("Team workspace Studio Nine created on the Free plan.")
    expect(page.locator("#workspace option:checked")).to_have_text("Studio Nine (team, owner)")
    expect(page.locator("#plan-list > li[data-plan='team']")).to_be_visible()
    plans = page.locator("#plan-list > li").evaluate_all("tiles => tiles.map(t => t.dataset.plan)")
    assert plans == ["free", "team", "enterprise"]
    page.locator("#workspace").select_option(label="Personal (personal, owner)")
    expect(page.locator("#plan-list > li[data-plan='creator']")).to_be_visible()
    plans = page.locator("#plan-list > li").evaluate_all("tiles => tiles.map(t => t.dataset.plan)")
    assert plans == ["free", "creator", "pro"]


def test_the_tab_works_from_the_keyboard(page):
    page.goto("/")
    page.get_by_label("Person's id").fill("kim")
    page.keyboard.press("Enter")
    expect(page.locator("#available")).to_have_text("50")
    generate = page.get_by_role("button", name="Generate image")
    expect(generate).to_be_visible()
    generate.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#available")).to_have_text("40")
    page.locator("#plan-list button[data-plan='creator'][data-interval='year']").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")  # a dialog closed from the keyboard changes nothing
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.locator("#plan-name")).to_have_text("Free")


def test_the_tab_fits_a_phone_and_a_screenshot_is_saved(page):
    sign_in(page, "phoebe")
    page.get_by_role("button", name="Buy 1,000 credits for €12.00").click()
    pay_on_standin(page)
    subscribe(page, "creator")
    page.set_viewport_size({"width": 375, "height": 800})
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow == 0
    expect(page.locator("#available")).to_have_text("1,500")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "subscription-tab-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1100, "height": 900})
    page.screenshot(path=str(SCREENSHOTS / "subscription-tab.png"), full_page=True)
    assert (SCREENSHOTS / "subscription-tab.png").stat().st_size > 10_000


def test_manage_payments_opens_the_portal_whose_changes_reach_the_tab(page, site):
    sign_in(page, "paula")
    subscribe(page, "creator", "annual")
    expect(page.locator("#plan-name")).to_have_text("Creator (annual)")
    renews_on = page.locator("#renews-on time").get_attribute("datetime")
    page.get_by_role("button", name="Manage payments").click()
    expect(page.get_by_role("heading", name="Manage payments")).to_be_visible()
    page.get_by_role("button", name="Decline the card").click()
    page.get_by_role("link", name="Return to the studio").click()
    status = page.locator("#plan-status")
    expect(status).to_have_text("Past due: the last payment failed. Plan credits resume once it is paid.")
    expect(page.locator("#notice")).to_be_empty()  # back from the portal is not back from a payment
    page.get_by_role("button", name="Manage payments").click()
    page.get_by_role("button", name="Pay the overdue invoice").click()
    page.get_by_role("button", name="Cancel at the end of the period").click()
    page.get_by_role("link", name="Return to the studio").click()
    expect(status).to_have_text(re.compile(r"^Ending on "))
    ends_on = status.locator("time").get_attribute("datetime")
    # An annual plan ends with its paid year (twelve monthly cycles), not with this month's cycle.
    ws = page.locator("#workspace").input_value()
    started = site.session("paula").get(f"{site.url}/v1/workspaces/{ws}/subscription").json()["cycle"]["start"]
    assert ends_on == (date.fromisoformat(started) + relativedelta(years=1)).isoformat() != renews_on
    expect(page.locator("#available")).to_have_text("500")


def test_a_member_sees_the_pool_and_generates_but_does_not_manage_billing(page, site):
    owner = site.session("owen")
    team = owner.post(f"{site.url}/v1/workspaces", json={"name": "Crew"}).json()["workspace_id"]
    assert owner.put(f"{site.url}/v1/workspaces/{team}/members/mia", json={"role": "member"}).status_code == 200
    page.goto("/")
    page.get_by_label("Person's id").fill("mia")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.locator("#workspace").select_option(label="Crew (team, member)")
    expect(page.locator("#available")).to_have_text("50")
    expect(page.locator("#manager-only")).to_be_visible()
    expect(page.locator("#history-hidden")).to_be_visible()
    expect(page.locator("#plan-list button")).to_have_count(0)
    expect(page.locator("#pack-list button")).to_have_count(0)
    page.get_by_role("button", name="Generate avatar").click()
    expect(page.locator("#notice")).to_contain_text(
        "Not enough credits: this costs 100 credits and 50 are available. Ask an owner or admin of this workspace to add credits")
    page.get_by_role("button", name="Generate image").click()
    expect(page.locator("#available")).to_have_text("40")


def test_an_upgrade_states_when_its_credits_come_and_bills_at_once(page):
    sign_in(page, "uma")
    subscribe(page, "creator")
    renews_on = page.locator("#renews-on time").get_attribute("datetime")
    page.get_by_role("button", name="Choose monthly: Pro, €29.00 / month").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading")).to_have_text("Upgrade to Pro (monthly)?")
    expect(dialog).to_contain_text(f"Pro's 2,000 credits arrive from your next renewal on {long_date(renews_on)}.")
    dialog.get_by_role("button", name="Upgrade").click()
    expect(page.locator("#plan-name")).to_have_text("Pro (monthly)")
    expect(page.locator("#bucket-plan")).to_have_text("500")  # credits in hand are untouched
    expect(page.locator("#renews-on time")).to_have_attribute("datetime", renews_on)


def test_cancel_now_says_what_expires_and_returns_to_free(page):
    sign_in(page, "nina")
    page.get_by_role("button", name="Buy 1,000 credits for €12.00").click()
    pay_on_standin(page)
    subscribe(page, "creator")
    expect(page.locator("#available")).to_have_text("1,500")
    page.get_by_role("button", name="Cancel now").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Creator ends today. Its 500 plan credits left expire at once.")
    expect(dialog).to_contain_text("The Free plan starts today with 50 credits. Your 1,000 top-up credits stay.")
    dialog.get_by_role("button", name="Cancel now").click()
    expect(page.locator("#plan-name")).to_have_text("Free")
    expect(page.locator("#available")).to_have_text("1,050")
    expect(page.locator("#bucket-plan")).to_have_text("50")
    expect(page.locator("#bucket-topup")).to_have_text("1,000")
    expect(page.get_by_role("button", name="Manage payments")).to_be_hidden()


def test_the_estimate_follows_typing_and_a_double_click_charges_once(page):
    sign_in(page, "dana")
    page.locator("#opt-audio-seconds").fill("95")  # four started 30 s blocks
    expect(page.locator("#estimate-audio")).to_have_text("Costs 40 credits.")
    page.locator("#opt-audio-seconds").fill("30")
    expect(page.locator("#estimate-audio")).to_have_text("Costs 10 credits.")
    page.get_by_role("button", name="Generate image").dblclick()
    expect(page.locator("#notice")).to_contain_text("Available now: 40.")
    expect(page.locator("#ledger-rows tr")).to_have_count(2)
    expect(page.locator("#available")).to_have_text("40")


def test_older_entries_page_through_the_ledger(page, site):
    s = site.session("lena")
    ws = s.get(f"{site.url}/v1/me").json()["workspaces"][0]["workspace_id"]
    for i in range(4):
        assert s.post(f"{site.url}/v1/workspaces/{ws}/charges", json={"service": "image"},
                      headers={"Idempotency-Key": f"lena-{i}"}).status_code == 201
    for i in range(17):
        assert s.post(f"{site.url}/v1/workspaces/{ws}/charges", json={"service": "upscale"},
                      headers={"Idempotency-Key": f"lena-free-{i}"}).status_code == 201
    page.goto("/")
    page.get_by_label("Person's id").fill("lena")
    page.get_by_role("button", name="Sign in", exact=True).click()
    rows = page.locator("#ledger-rows tr")
    expect(rows).to_have_count(20)
    page.get_by_role("button", name="Show older entries").click()
    expect(rows).to_have_count(22)  # 21 charges and the first grant
    expect(rows.last).to_have_attribute("data-kind", "grant")
    expect(page.get_by_role("button", name="Show older entries")).to_be_hidden()
    expect(page.locator("#chart-caption")).to_contain_text("from 50 to 10, lowest 10, highest 50.")


def test_a_member_cap_402_says_whose_limit_it_is(page, site):
    owner = site.session("omar")
    team = owner.post(f"{site.url}/v1/workspaces", json={"name": "Capped"}).json()["workspace_id"]
    assert owner.put(f"{site.url}/v1/workspaces/{team}/members/max",
                     json={"role": "member", "cycle_cap": 10}).status_code == 200
    page.goto("/")
    page.get_by_label("Person's id").fill("max")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.locator("#workspace").select_option(label="Capped (team, member)")
    expect(page.locator("#manager-only")).to_be_visible()
    page.locator("#opt-image-quality").select_option("hd")
    page.get_by_role("button", name="Generate image").click()
    expect(page.locator("#notice")).to_contain_text(
        "You have reached the cap set for you this cycle: this costs 20 credits and your cap leaves 10.")
    expect(page.locator("#available")).to_have_text("50")


def test_an_answer_for_a_workspace_left_behind_is_not_shown(page, site):
    s = site.session("sam")
    team = s.post(f"{site.url}/v1/workspaces", json={"name": "Slow"}).json()["workspace_id"]
    assert s.post(f"{site.url}/v1/workspaces/{team}/charges", json={"service": "image", "options": {"quality": "ultra"}},
                  headers={"Idempotency-Key": "sam-team"}).status_code == 201  # the team has 10
    sign_in(page, "sam")
    held = []
    page.route(f"**/v1/workspaces/{team}/subscription", lambda route: held.append(route))  # the team's answer waits
    page.locator("#workspace").select_option(label="Slow (team, owner)")
    for _ in range(250):  # the route handler runs while Playwright waits on something
        if held:
            break
        page.wait_for_timeout(20)
    assert len(held) == 1
    page.locator("#workspace").select_option(label="Personal (personal, owner)")
    expect(page.locator("#ledger-rows tr")).to_have_count(1)
    with page.expect_response(f"**/v1/workspaces/{team}/subscription"):
        held[0].continue_()  # now the late answer arrives
    page.unroute(f"**/v1/workspaces/{team}/subscription")
    page.get_by_role("button", name="Generate image").click()
    expect(page.locator("#notice")).to_contain_text("Available now: 40.")  # the personal 50, not the team's 10
    expect(page.locator("#workspace option:checked")).to_have_text("Personal (personal, owner)")
    assert s.get(f"{site.url}/v1/workspaces/{team}/subscription").json()["balance"]["available"] == 10


def test_an_enterprise_contract_offers_no_self_service_changes(page, site):
    s = site.session("erin")
    team = s.post(f"{site.url}/v1/workspaces", json={"name": "Bigco"}).json()["workspace_id"]
    out = site.cli("contract", "--workspace", team, "--credits", "20000", "--until", "2099-12-31")
    assert out.returncode == 0, out.stderr
    sign_in(page, "erin")
    page.locator("#workspace").select_option(label="Bigco (team, owner)")
    expect(page.locator("#plan-name")).to_have_text("Enterprise")
    expect(page.locator("#plan-status")).to_have_text("Active, by contract")
    expect(page.locator("#plans-blocked")).to_have_text("Your plan is set by contract: talk to sales to change it.")
    expect(page.locator("#plan-list button")).to_have_count(0)
    for name in ("Manage payments", "Cancel at period end", "Cancel now"):
        expect(page.get_by_role("button", name=name)).to_be_hidden()


def test_a_failed_load_leaves_a_way_on(page):
    sign_in(page, "remy")
    page.route("**/v1/me", lambda route: route.fulfill(
        status=503, content_type="application/json", headers={"Retry-After": "1"},
        body='{"error": {"code": "unavailable", "message": "The wallet is busy."}}'))
    page.reload()
    expect(page.locator("#notice")).to_contain_text("The wallet is busy. Try again in a moment.")
    page.unroute("**/v1/me")
    page.get_by_role("button", name="Try again").click()
    expect(page.locator("#available")).to_have_text("50")
    expect(page.locator("#sign-in")).to_be_hidden()


def test_back_from_checkout_before_the_webhook_the_tab_catches_up(page, site):
    """Stripe may send the person back before its webhook arrives: the tab looks again."""
    sign_in(page, "wes")
    ws = page.locator("#workspace").input_value()
    page.get_by_role("button", name="Buy 1,000 credits for €12.00").click()
    expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    checkout = page.url
    page.goto(f"/?workspace={ws}&checkout=done")  # back, but nothing is paid yet
    expect(page.locator("#notice")).to_contain_text("Its credits appear here as soon as Stripe confirms it.")
    expect(page.locator("#available")).to_have_text("50")
    assert site.session("wes").post(checkout + "/pay", allow_redirects=False).status_code == 303  # the webhook lands
    expect(page.locator("#available")).to_have_text("1,050")
    expect(page.locator("#ledger-rows tr")).to_have_count(2)


def test_a_switch_scheduled_in_the_portal_shows_as_pending_on_the_tab(page):
    sign_in(page, "pia")
    subscribe(page, "pro")
    renews_on = page.locator("#renews-on time").get_attribute("datetime")
    page.get_by_role("button", name="Manage payments").click()
    page.get_by_role("button", name="Switch to Creator (monthly) at the end of the period").click()
    page.get_by_role("link", name="Return to the studio").click()
    expect(page.locator("#pending")).to_have_text(f"Creator (monthly) from {long_date(renews_on)}")
    expect(page.locator("#plan-name")).to_have_text("Pro (monthly)")


def test_deployed_the_page_takes_a_pasted_token_and_hides_the_dev_sign_in(page, site):
    page.route("**/config.js", lambda route: route.fulfill(
        content_type="text/javascript", body='window.STUDIO_CONFIG = { api: "", devSignIn: false };'))
    page.goto("/")
    expect(page.locator("#dev-sign-in")).to_be_hidden()
    page.get_by_label("Token").fill(site.token("tara"))
    page.get_by_role("button", name="Use this token").click()
    expect(page.locator("#who-name")).to_have_text("Signed in as tara")
    expect(page.locator("#available")).to_have_text("50")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Token")).to_be_visible()
    page.reload()  # signed out stays signed out
    expect(page.locator("#tab")).to_be_hidden()
