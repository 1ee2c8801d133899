// Customer service: a user's tokens by grant, their journal in words, and adjustment grants.
"use strict";
TZ.key = "trialzone.support.token";
const $ = (id) => document.getElementById(id);
const KINDS = { welcome_gift: "Welcome gift", monthly_trial: "Monthly free trial", package: "Token package",
  pay_as_you_go: "Pay-as-you-go", adjustment: "Adjustment", refund: "Refund" };
let current = { user: "", before: null };

async function signIn() {
  TZ.say("auth-error", "");
  try {
    const me = await TZ.json("/v1/support/whoami");
    $("operator").textContent = me.operator;
  } catch (e) {
    TZ.setToken("");
    TZ.show("console", false); TZ.show("signin", true); TZ.show("signed-in", false);
    TZ.say("auth-error", "Sign-in refused: " + e.message, true);
    return;
  }
  TZ.show("console", true); TZ.show("signin", false); TZ.show("signed-in", true);
}

$("signin").addEventListener("submit", (ev) => {
  ev.preventDefault();
  TZ.setToken($("token").value.trim());
  $("token").value = "";
  signIn();
});
$("sign-out").addEventListener("click", () => { TZ.setToken(""); location.reload(); });

async function lookup(user, before) {
  const q = new URLSearchParams({ limit: "20" });
  if (before) q.set("before_id", String(before));
  const data = await TZ.json(`/v1/admin/users/${encodeURIComponent(user)}/ledger?${q}`);
  current = { user, before: data.next_before_id };
  $("shown-user").textContent = user;
  const b = data.balance;
  $("available").textContent = TZ.n(b.available);
  $("held").textContent = b.held ? `(${TZ.n(b.held)} held for running operations)` : "";
  $("grants").replaceChildren(...b.grants.map((g) => TZ.el("tr", {},
    TZ.el("td", { text: KINDS[g.kind] || g.kind }),
    TZ.el("td", { text: TZ.n(g.remaining) + (g.held ? ` (+${TZ.n(g.held)} held)` : "") }),
    TZ.el("td", { text: TZ.n(g.amount) }),
    TZ.el("td", { text: g.expires_at ? TZ.when(g.expires_at) : "never" }))));
  const items = data.items.map((e) => TZ.el("li", { "data-entry": String(e.id) },
    TZ.el("span", { class: "at", text: TZ.when(e.at) + (e.operation_id ? ` · operation ${e.operation_id}` : "") }),
    TZ.el("span", { class: e.amount > 0 ? "amount-pos" : (e.amount < 0 ? "amount-neg" : ""), text: e.text })));
  if (before) $("journal").append(...items); else $("journal").replaceChildren(...items);
  if (!before && !items.length) $("journal").replaceChildren(TZ.el("li", { class: "muted", text: "No journal entries." }));
  TZ.show("more", !!data.next_before_id);
  TZ.show("user", true);
}

$("lookup").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  TZ.say("lookup-msg", "");
  TZ.say("adj-msg", "");
  try { await lookup($("user-id").value.trim(), null); }
  catch (e) { TZ.show("user", false); TZ.say("lookup-msg", e.message, true); }
});
$("more").addEventListener("click", () => lookup(current.user, current.before).catch((e) => TZ.say("lookup-msg", e.message, true)));

$("adjust").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const amount = parseInt($("adj-amount").value, 10);
  const reason = $("adj-reason").value.trim();
  if (!reason) { TZ.say("adj-msg", "A reason is required.", true); return; }
  try {
    await TZ.json(`/v1/support/users/${encodeURIComponent(current.user)}/adjustments`, {
      method: "POST", headers: { "Content-Type": "application/json", "Idempotency-Key": TZ.uuid() },
      body: JSON.stringify({ amount, reason }),
    });
    $("adj-amount").value = ""; $("adj-reason").value = "";
    await lookup(current.user, null);
    TZ.say("adj-msg", `Granted ${TZ.n(amount)} tokens.`);
  } catch (e) { TZ.say("adj-msg", e.message, true); }
});

if (TZ.token()) signIn();
