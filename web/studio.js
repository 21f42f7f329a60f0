// The Subscription and credits tab: a reference client of the public API, with no build step.
// Every number on the page comes from the API; the page computes none of them.
const API = (window.STUDIO_CONFIG && window.STUDIO_CONFIG.api) || "";
const TOKEN_KEY = "studio.token";
const WORKSPACE_KEY = "studio.workspace";
const PAGE = 20; // ledger rows per page
const CHART_ENTRIES = 100; // the newest entries the chart draws, back to two cycles before this one

const $ = (id) => document.getElementById(id);
const DEV_SIGN_IN = !(window.STUDIO_CONFIG && window.STUDIO_CONFIG.devSignIn === false);
const state = { token: localStorage.getItem(TOKEN_KEY), me: null, catalog: null, view: null, role: null, cursor: null, shown: 0 };
// Each workspace shown gets a number: an answer that arrives after the person switched is dropped.
const current = (shown) => shown === state.shown;

class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `The server answered ${status}.`);
    Object.assign(this, { status, code: error.code, required: error.required, available: error.available });
  }
}

async function call(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (state.token) init.headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch {
    throw new ApiError(0, { code: "network", message: "The service cannot be reached. Check your connection and try again." });
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || { code: "unknown", message: `The server answered ${response.status}.` };
    if (response.status === 503) error.message += " Try again in a moment.";
    throw new ApiError(response.status, error);
  }
  return data;
}

// --- small DOM helpers -------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const number = new Intl.NumberFormat("en-GB");
const credits = (n) => number.format(n);
const money = (amount, currency) =>
  new Intl.NumberFormat("en-GB", { style: "currency", currency: currency.toUpperCase() }).format(amount / 100);
const longDate = (iso) =>
  new Date(iso.length === 10 ? `${iso}T00:00:00Z` : iso).toLocaleDateString("en-GB", {
    timeZone: "UTC", day: "numeric", month: "long", year: "numeric",
  });
const when = (iso) => iso.replace("T", " ").replace(/(\.\d+)?Z$/, "");
const dateEl = (iso) => h("time", { datetime: iso, text: longDate(iso) });
const signed = (n) => (n > 0 ? `+${credits(n)}` : n < 0 ? `-${credits(-n)}` : "0");
const intervalWord = (i) => (i === "year" ? "annual" : "monthly");

function notify(kind, ...content) {
  const box = $("notice");
  box.className = kind;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.replaceChildren(h("strong", { text: kind === "error" ? "Problem: " : "Done: " }), ...content);
  box.focus({ preventScroll: true });
}

function explain(error) {
  if (error.code === "insufficient_credits") {
    const manager = isManager();
    return [
      `Not enough credits: this costs ${credits(error.required)} credits and ${credits(error.available)} are available. `,
      ...(manager
        ? ["To go on, ", h("a", { href: "#packs", text: "buy a top-up pack" }), " or ", h("a", { href: "#plans", text: "upgrade your plan" }), "."]
        : ["Ask an owner or admin of this workspace to add credits, or wait for the next renewal."]),
    ];
  }
  if (error.code === "member_cap_reached") {
    return [`You have reached the cap set for you this cycle: this costs ${credits(error.required)} credits and your cap leaves ${credits(error.available)}. `,
      "Ask an owner or admin to raise it, or wait for the next renewal."];
  }
  if (error.status === 401) return ["Your sign-in has expired or is not valid. Sign in again."];
  return [error.message];
}

async function attempt(fn) {
  try {
    return await fn();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    notify("error", ...explain(error));
    if (error.status === 401) signOut(false);
    return undefined;
  }
}

function confirmAction(title, paragraphs, okLabel = "Confirm") {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").replaceChildren(...paragraphs.map((p) => h("p", {}, p)));
  $("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}

const newKey = () => crypto.randomUUID();
const ws = () => state.view.workspace_id;
const isManager = () => state.role === "owner" || state.role === "admin";

// --- sign in -----------------------------------------------------------------------------------

function signIn(token) {
  state.token = token;
  localStorage.setItem(TOKEN_KEY, token);
  return start();
}

function signOut(clearNotice = true) {
  state.token = null;
  localStorage.removeItem(TOKEN_KEY);
  $("tab").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  if (clearNotice) $("notice").replaceChildren();
}

$("dev-sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("user-id").value.trim();
  const made = await attempt(async () => {
    try {
      return await call("POST", "/dev/token", { user_id: user });
    } catch (error) {
      if (error.status !== 400) error.message = "This server makes no dev tokens (it is not the local server): paste a token instead.";
      throw error;
    }
  });
  if (made) await signIn(made.token);
});

$("token-sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  await signIn($("token").value.trim());
});

$("sign-out").addEventListener("click", () => signOut());

// --- loading -----------------------------------------------------------------------------------

async function start() {
  const params = new URLSearchParams(location.search);
  const loaded = await attempt(async () => {
    [state.catalog, state.me] = await Promise.all([call("GET", "/v1/catalog"), call("GET", "/v1/me")]);
    return true;
  });
  if (!loaded) {
    // Not a dead end: sign in again, or try again with the same token.
    $("sign-in").hidden = false;
    $("retry").hidden = !state.token;
    return;
  }
  $("sign-in").hidden = true;
  $("who").hidden = false;
  $("who-name").textContent = `Signed in as ${state.me.user_id}`;
  const wanted = params.get("workspace") || localStorage.getItem(WORKSPACE_KEY);
  fillSwitcher(state.me.workspaces.some((w) => w.workspace_id === wanted) ? wanted : state.me.workspaces[0].workspace_id);
  await showWorkspace();
  const outcome = params.get("checkout");
  if (outcome === "done") {
    notify("ok", "Payment received. Its credits appear here as soon as Stripe confirms it.");
    watchForWebhook(state.shown);
  }
  if (outcome === "cancelled") notify("error", "The checkout was cancelled; nothing was charged.");
  if (params.has("workspace") || outcome) history.replaceState(null, "", location.pathname);
}

// Back from Stripe's checkout, its webhook may not have arrived yet: look again for a while.
async function watchForWebhook(shown) {
  for (const seconds of [1, 2, 3, 5, 8]) {
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    if (!current(shown)) return;
    const before = JSON.stringify(state.view);
    const view = await call("GET", `/v1/workspaces/${ws()}/subscription`).catch(() => null);
    if (view && current(shown) && JSON.stringify(view) !== before) {
      render(view);
      renderPlans();
      await loadHistory(shown);
    }
  }
}

$("retry").addEventListener("click", () => start());

function fillSwitcher(selected) {
  $("workspace").replaceChildren(...state.me.workspaces.map((w) =>
    h("option", { value: w.workspace_id, selected: w.workspace_id === selected,
      text: `${w.name} (${w.kind === "personal" ? "personal" : "team"}, ${w.role})` })));
}

async function showWorkspace() {
  const id = $("workspace").value;
  const shown = ++state.shown;
  const view = await attempt(() => call("GET", `/v1/workspaces/${id}/subscription`));
  if (!current(shown)) return;
  if (!view) {
    if (state.view) $("workspace").value = state.view.workspace_id; // stay on what is shown
    return;
  }
  localStorage.setItem(WORKSPACE_KEY, id);
  state.role = state.me.workspaces.find((w) => w.workspace_id === id).role;
  render(view);
  renderPlans();
  renderPacks();
  renderServices();
  $("tab").hidden = false;
  await loadHistory(shown);
}

async function refresh(shown) {
  const view = await attempt(() => call("GET", `/v1/workspaces/${ws()}/subscription`));
  if (!current(shown)) return;
  if (view) render(view);
  renderPlans();
  await loadHistory(shown);
}

$("workspace").addEventListener("change", showWorkspace);

$("new-team-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const view = await attempt(() => call("POST", "/v1/workspaces", { name: $("team-name").value.trim() }, { "Idempotency-Key": newKey() }));
  if (!view) return;
  const me = await attempt(() => call("GET", "/v1/me"));
  if (!me) return;
  state.me = me;
  fillSwitcher(view.workspace_id);
  $("new-team").open = false;
  await showWorkspace();
  notify("ok", `Team workspace ${view.name} created on the Free plan.`);
});

// --- the current plan --------------------------------------------------------------------------

function planOf(id) {
  return state.catalog.plans.find((p) => p.id === id);
}

function render(view) {
  state.view = view;
  const contract = planOf(view.plan.id).credits_per_cycle === null; // enterprise: billed by contract
  const billed = view.plan.id !== "free" && !contract; // a Stripe subscription the page may change
  $("plan-name").textContent = view.interval && !contract ? `${view.plan.name} (${intervalWord(view.interval)})` : view.plan.name;
  const status = $("plan-status");
  status.dataset.status = view.status;
  const ending = view.ends_on ? ["Ending on ", dateEl(view.ends_on), " (then the Free plan)"] : [];
  if (view.status === "past_due") {
    status.replaceChildren("Past due: the last payment failed. Plan credits resume once it is paid.", ...(ending.length ? [" ", ...ending] : []));
  } else if (ending.length) status.replaceChildren(...ending);
  else status.replaceChildren(contract ? "Active, by contract" : "Active");
  $("available").textContent = credits(view.balance.available);
  $("bucket-plan").textContent = credits(view.balance.plan);
  $("bucket-topup").textContent = credits(view.balance.topup);
  $("bucket-held").textContent = credits(view.balance.held);
  $("renews-on").replaceChildren(dateEl(view.renews_on));
  const change = view.ends_on ? null : view.pending_change; // a plan that ends takes no change
  $("pending-row").hidden = !change;
  if (change) {
    $("pending").replaceChildren(`${planOf(change.plan).name} (${intervalWord(change.interval)}) from `, dateEl(change.effective_on));
  }
  const manager = isManager();
  $("manager-only").hidden = manager;
  $("withdraw").hidden = !manager;
  $("manage-payments").hidden = !(manager && view.manage_payments && !contract);
  $("cancel-end").hidden = !(manager && billed && !view.ends_on);
  $("cancel-now").hidden = !(manager && billed);
  $("resume").hidden = !(manager && billed && view.ends_on);
}

$("manage-payments").addEventListener("click", async () => {
  const made = await attempt(() => call("POST", `/v1/workspaces/${ws()}/portal`, {}));
  if (made) location.assign(made.portal_url);
});

$("cancel-end").addEventListener("click", async () => {
  const v = state.view;
  const ok = await confirmAction("Cancel at the end of the period?", [
    `${v.plan.name} stays until its paid period ends. Credits keep renewing until then.`,
    "Then the workspace returns to the Free plan and its monthly credits. Top-up credits stay.",
    "Remaining credits are never refunded as money. You can resume the plan before it ends.",
  ], "Cancel at period end");
  if (!ok) return;
  const view = await attempt(() => call("POST", `/v1/workspaces/${ws()}/subscription/cancel`, { when: "period_end" }));
  if (view) { render(view); notify("ok", "Your plan ends on ", dateEl(view.ends_on), ". You can resume it until then."); }
});

$("cancel-now").addEventListener("click", async () => {
  const v = state.view;
  const free = planOf("free").credits_per_cycle;
  const ok = await confirmAction("Cancel now?", [
    `${v.plan.name} ends today. Its ${credits(v.balance.plan)} plan credits left expire at once.`,
    `The Free plan starts today with ${credits(free)} credits. Your ${credits(v.balance.topup)} top-up credits stay.`,
    "Unused paid time may be refunded pro rata as money through Stripe, never as credits.",
  ], "Cancel now");
  if (!ok) return;
  const view = await attempt(() => call("POST", `/v1/workspaces/${ws()}/subscription/cancel`, { when: "now" }));
  if (view) { render(view); renderPlans(); await loadHistory(state.shown); notify("ok", "The plan is cancelled. You are on the Free plan."); }
});

$("resume").addEventListener("click", async () => {
  const view = await attempt(() => call("POST", `/v1/workspaces/${ws()}/subscription/resume`, {}));
  if (view) { render(view); notify("ok", `${view.plan.name} goes on: it renews on `, dateEl(view.renews_on), "."); }
});

$("withdraw").addEventListener("click", async () => {
  const v = state.view;
  const view = await attempt(() => call("POST", `/v1/workspaces/${ws()}/subscription/change`, { plan: v.plan.id, interval: v.interval }));
  if (view) { render(view); renderPlans(); notify("ok", `The change is withdrawn: you stay on ${view.plan.name}.`); }
});

// --- plans -------------------------------------------------------------------------------------

function rank(id) {
  return state.catalog.plans.findIndex((p) => p.id === id);
}

// Mirrors the service's rule (it decides; this only chooses the words shown before confirming).
function isUpgrade(current, wanted) {
  if (rank(wanted.plan) !== rank(current.plan)) return rank(wanted.plan) > rank(current.plan);
  return wanted.interval === "year" && current.interval === "month";
}

function renderPlans() {
  const view = state.view;
  const kind = state.me.workspaces.find((w) => w.workspace_id === view.workspace_id).kind;
  const plans = state.catalog.plans.filter((p) => p.workspace_kind === "any" || p.workspace_kind === kind);
  // Why no plan can be chosen now, if so; the API would refuse the change anyway.
  const blocked = !isManager() ? "Owners and admins choose plans."
    : planOf(view.plan.id).credits_per_cycle === null ? "Your plan is set by contract: talk to sales to change it."
    : view.status === "past_due" ? "Pay the overdue invoice (Manage payments) to change plans."
    : view.ends_on ? "Your plan is ending: resume it to change plans."
    : null;
  $("plans-blocked").textContent = blocked || "";
  $("plans-blocked").hidden = !blocked;
  $("plan-list").replaceChildren(...plans.map((plan) => {
    const current = plan.id === view.plan.id;
    const prices = Object.entries(plan.prices);
    const amount = plan.credits_per_cycle === null ? "Credits set by contract" : `${credits(plan.credits_per_cycle)} credits every cycle`;
    const choices = prices.map(([interval, price]) => {
      const here = current && view.interval === interval;
      const label = `${money(price.amount, price.currency)} / ${interval === "year" ? "year" : "month"}`;
      return h("li", {},
        h("span", { text: label }), " ",
        here ? h("em", { text: "your plan" })
          : !blocked && plan.credits_per_cycle !== null
            ? h("button", { type: "button", "data-plan": plan.id, "data-interval": interval,
                "aria-label": `Choose ${intervalWord(interval)}: ${plan.name}, ${label}`,
                onclick: () => choosePlan(plan, interval, price) }, `Choose ${intervalWord(interval)}`)
            : null);
    });
    let note = null;
    if (plan.id === "free" && !current) note = "To return to Free, cancel your plan.";
    if (plan.credits_per_cycle === null) note = "By contract: contact sales.";
    return h("li", { class: current ? "tile current" : "tile", "data-plan": plan.id },
      h("h3", {}, plan.name, current ? h("span", { class: "badge", text: " · current plan" }) : null),
      h("p", { text: amount }),
      prices.length ? h("ul", { class: "prices" }, choices) : null,
      note ? h("p", { class: "muted", text: note }) : null);
  }));
}

async function choosePlan(plan, interval, price) {
  const view = state.view;
  const cost = `${money(price.amount, price.currency)} per ${interval}`;
  const grant = `${credits(plan.credits_per_cycle)} credits`;
  if (view.plan.id === "free") {
    const ok = await confirmAction(`Subscribe to ${plan.name} (${intervalWord(interval)})?`, [
      `You pay ${cost} through Stripe's checkout.`,
      `The plan starts at once: the ${credits(view.balance.plan)} Free credits left expire, and ${grant} arrive as soon as the first payment is confirmed, then every cycle${interval === "year" ? " for 12 months (paid once a year)" : ""}.`,
      "Top-up credits stay.",
    ], "Go to payment");
    if (!ok) return;
    const made = await attempt(() => call("POST", `/v1/workspaces/${ws()}/checkout/subscription`, { plan: plan.id, interval }, { "Idempotency-Key": newKey() }));
    if (made) location.assign(made.checkout_url);
    return;
  }
  const up = isUpgrade({ plan: view.plan.id, interval: view.interval }, { plan: plan.id, interval });
  const words = up
    ? [`Billing changes now to ${cost}; Stripe charges the prorated difference.`,
       `${plan.name}'s ${grant} arrive from your next renewal on ${longDate(view.renews_on)}. The credits you have now are untouched.`]
    : [view.interval === "year"
        ? "The change takes effect at the end of the year you have paid for; the date is shown once it is scheduled."
        : `The change takes effect at the end of what you have paid for: ${longDate(view.renews_on)}.`,
       `Until then you keep ${view.plan.name} and its credits. You can withdraw the change before it takes effect.`];
  const ok = await confirmAction(`${up ? "Upgrade" : "Downgrade"} to ${plan.name} (${intervalWord(interval)})?`, words, up ? "Upgrade" : "Schedule the change");
  if (!ok) return;
  const updated = await attempt(() => call("POST", `/v1/workspaces/${ws()}/subscription/change`, { plan: plan.id, interval }));
  if (!updated) return;
  render(updated);
  renderPlans();
  notify("ok", up ? `You are now on ${updated.plan.name}.` : `${plan.name} starts on ${longDate(updated.pending_change ? updated.pending_change.effective_on : updated.renews_on)}.`);
}

// --- top-up packs --------------------------------------------------------------------------------

function renderPacks() {
  const manager = isManager();
  $("pack-list").replaceChildren(...state.catalog.packs.map((pack) =>
    h("li", { class: "tile", "data-pack": pack.id },
      h("h3", { text: `+${credits(pack.credits)} credits` }),
      h("p", { text: money(pack.amount, pack.currency) }),
      manager
        ? h("button", { type: "button", "aria-label": `Buy ${credits(pack.credits)} credits for ${money(pack.amount, pack.currency)}`,
            onclick: () => buyPack(pack) }, "Buy")
        : h("p", { class: "muted", text: "Owners and admins buy credits." }))));
}

async function buyPack(pack) {
  const made = await attempt(() => call("POST", `/v1/workspaces/${ws()}/checkout/topup`, { pack: pack.id }, { "Idempotency-Key": newKey() }));
  if (made) location.assign(made.checkout_url);
}

// --- estimate and generate ---------------------------------------------------------------------

function optionField(service, name, spec) {
  const id = `opt-${service.id}-${name}`;
  const input = spec.choices
    ? h("select", { id, name }, spec.choices.map((c) => h("option", { value: c, selected: c === spec.default, text: c })))
    : h("input", { id, name, type: "number", inputmode: "numeric", min: spec.min, max: spec.max, value: spec.default ?? spec.min, required: true });
  return h("div", { class: "field" }, h("label", { for: id, text: name }), input);
}

function renderServices() {
  $("service-list").replaceChildren(...state.catalog.services.map((service) => {
    const output = h("output", { id: `estimate-${service.id}`, "aria-live": "polite" });
    const form = h("form", { class: "service", "data-service": service.id },
      h("fieldset", {},
        h("legend", { text: service.name }),
        Object.entries(service.options || {}).map(([name, spec]) => optionField(service, name, spec)),
        h("p", {}, output),
        h("button", { type: "submit" }, service.free ? `Run ${service.name.toLowerCase()} (free)` : `Generate ${service.name.toLowerCase()}`)));
    const options = () => Object.fromEntries([...form.elements]
      .filter((el) => el.name)
      .map((el) => [el.name, el.type === "number" ? Number(el.value) : el.value]));
    let asked = 0;
    let timer;
    const estimate = async () => {
      const mine = ++asked; // only the newest question's answer is shown
      if (!form.checkValidity()) { output.textContent = "Choose valid options to see the cost."; return; }
      const answer = await call("POST", "/v1/estimate", { service: service.id, options: options() })
        .then((e) => (e.free ? "Free: costs no credits." : `Costs ${credits(e.credits)} credits.`), (error) => error.message);
      if (mine === asked) output.textContent = answer;
    };
    form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(estimate, 250); });
    form.addEventListener("change", () => { clearTimeout(timer); estimate(); });
    const button = form.querySelector("button");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (button.disabled) return;
      button.disabled = true; // one click, one generation
      try {
        await generate(service, options(), ws(), state.shown);
      } finally {
        button.disabled = false;
      }
    });
    estimate();
    return form;
  }));
}

async function generate(service, options, workspaceId, shown) {
  const path = `/v1/workspaces/${workspaceId}`;
  const body = { service: service.id, options };
  let message, balance;
  if (service.id === "video") {
    // A long generation: hold the estimate, then capture what it cost once it is done.
    const hold = await attempt(() => call("POST", `${path}/holds`, body, { "Idempotency-Key": newKey() }));
    if (!hold) return;
    const done = await attempt(() => call("POST", `${path}/holds/${hold.hold_id}/capture`, { credits: hold.credits }));
    if (!done) return;
    message = `${service.name} generated: ${credits(hold.credits)} credits held, ${credits(done.captured)} captured, ${credits(done.returned)} returned.`;
    balance = done.balance;
  } else {
    const charge = await attempt(() => call("POST", `${path}/charges`, body, { "Idempotency-Key": newKey() }));
    if (!charge) return;
    message = service.free
      ? `${service.name} done: it cost no credits.`
      : `${service.name} generated: ${credits(charge.credits)} credits (${credits(charge.from_plan)} plan, ${credits(charge.from_topup)} top-up).`;
    balance = charge.balance;
  }
  notify("ok", `${message} Available now: ${credits(balance.available)}.`);
  if (current(shown)) await refresh(shown);
}

// --- history -----------------------------------------------------------------------------------

const KINDS = {
  grant: "Plan credits granted", expire: "Plan credits expired", charge: "Charge", hold: "Hold",
  capture: "Hold captured", release: "Hold released", topup: "Top-up", refund: "Refund", adjust: "Adjustment",
};

function describe(entry) {
  const ref = entry.ref || {};
  const detail = ref.service || (ref.type === "cycle" && ref.plan ? planOf(ref.plan)?.name : null) || ref.reason;
  return detail ? `${KINDS[entry.kind] || entry.kind} · ${detail}` : KINDS[entry.kind] || entry.kind;
}

function row(entry) {
  return h("tr", { "data-kind": entry.kind },
    h("td", {}, h("time", { datetime: entry.at, text: when(entry.at) })),
    h("td", { text: describe(entry) }),
    h("td", { class: "num", text: signed(entry.plan_delta) }),
    h("td", { class: "num", text: signed(entry.topup_delta) }),
    h("td", { class: "num", text: signed(entry.held_delta) }),
    h("td", { class: "num", text: credits(entry.balance.available) }),
    h("td", { text: entry.actor }));
}

async function loadHistory(shown) {
  state.cursor = null;
  $("older").hidden = true;
  if (!isManager()) {
    $("ledger-rows").replaceChildren();
    $("history-hidden").hidden = false;
    for (const id of ["ledger", "older", "chart-figure"]) $(id).hidden = true;
    return;
  }
  $("history-hidden").hidden = true;
  const pages = await attempt(() => Promise.all([
    call("GET", `/v1/workspaces/${ws()}/ledger?limit=${PAGE}`),
    call("GET", `/v1/workspaces/${ws()}/ledger?limit=${CHART_ENTRIES}`),
  ]));
  if (!pages || !current(shown)) return;
  $("ledger").hidden = false;
  $("ledger-rows").replaceChildren();
  showPage(pages[0]);
  drawChart(pages[1].entries);
}

function showPage(page) {
  $("ledger-rows").append(...page.entries.map(row));
  state.cursor = page.next_cursor;
  $("older").hidden = !state.cursor;
}

$("older").addEventListener("click", async () => {
  const shown = state.shown;
  const button = $("older");
  button.disabled = true;
  const page = await attempt(() => call("GET", `/v1/workspaces/${ws()}/ledger?limit=${PAGE}&cursor=${encodeURIComponent(state.cursor)}`));
  button.disabled = false;
  if (page && current(shown)) showPage(page);
});

function drawChart(newestFirst) {
  const figure = $("chart-figure");
  const since = new Date(`${state.view.cycle.start}T00:00:00Z`);
  since.setUTCMonth(since.getUTCMonth() - 2);
  const points = newestFirst
    .filter((e) => new Date(e.at) >= since)
    .reverse()
    .map((e) => ({ t: new Date(e.at).getTime(), v: e.balance.available }));
  if (!points.length) { figure.hidden = true; return; }
  figure.hidden = false;
  const now = Date.now();
  points.push({ t: Math.max(now, points[points.length - 1].t), v: points[points.length - 1].v });
  const W = 600, H = 140, pad = 4;
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1);
  const top = Math.max(...points.map((p) => p.v), 1);
  const x = (t) => pad + ((t - t0) / (t1 - t0)) * (W - 2 * pad);
  const y = (v) => H - pad - (v / top) * (H - 2 * pad);
  // A step line: a balance holds its value until the next entry changes it.
  let d = `M${x(points[0].t).toFixed(1)},${y(points[0].v).toFixed(1)}`;
  for (let i = 1; i < points.length; i++) d += ` H${x(points[i].t).toFixed(1)} V${y(points[i].v).toFixed(1)}`;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-labelledby", "chart-caption");
  const path = document.createElementNS(svgNS, "path");
  path.setAttribute("d", d);
  path.setAttribute("class", "line");
  svg.append(path);
  $("chart").replaceChildren(svg);
  const values = points.map((p) => p.v);
  $("chart-caption").textContent = `Available credits since ${longDate(new Date(points[0].t).toISOString())}: `
    + `from ${credits(values[0])} to ${credits(values[values.length - 1])}, `
    + `lowest ${credits(Math.min(...values))}, highest ${credits(Math.max(...values))}.`;
}

// --- go ----------------------------------------------------------------------------------------

$("dev-sign-in").hidden = !DEV_SIGN_IN; // deployed, people bring a token from the identity provider

if (state.token) start();
else signOut(false);
