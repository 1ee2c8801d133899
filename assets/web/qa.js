// The QA console: acts as a flagged test user through the public API (QA credential + X-Test-User).
"use strict";
TZ.key = "trialzone.qa.token";
const $ = (id) => document.getElementById(id);
const state = {
  user: sessionStorage.getItem("trialzone.qa.user") || "",
  features: [], photo: null, photoUrl: null, image: null,
  style: null, strokes: [], drawing: null, resultUrl: null, polling: null,
};

function asUser(extra) { return Object.assign({ "X-Test-User": state.user }, extra || {}); }

// --- sign in ---------------------------------------------------------------------------------
async function signIn() {
  TZ.say("auth-error", "");
  try {
    await loadUsers();  // the QA credential is checked by the API: 401/403 shows here
  } catch (e) {
    TZ.setToken("");
    TZ.show("console", false); TZ.show("signin", true); TZ.show("signed-in", false);
    TZ.say("auth-error", "Sign-in refused: " + e.message, true);
    return;
  }
  TZ.show("console", true); TZ.show("signin", false); TZ.show("signed-in", true);
  await Promise.all([loadFeatures(), loadSamples()]);
  await selectUser(state.user);
}

$("signin").addEventListener("submit", (ev) => {
  ev.preventDefault();
  TZ.setToken($("token").value.trim());
  $("token").value = "";
  signIn();
});
$("sign-out").addEventListener("click", () => { TZ.setToken(""); sessionStorage.removeItem("trialzone.qa.user"); location.reload(); });

// --- test users --------------------------------------------------------------------------------
async function loadUsers() {
  const page = await TZ.json("/v1/qa/test-users");
  const sel = $("test-user");
  sel.replaceChildren(TZ.el("option", { value: "", text: page.items.length ? "Pick a test user" : "No test users yet" }));
  for (const u of page.items) {
    sel.append(TZ.el("option", { value: u.user_id, text: `${u.user_id} (${TZ.n(u.available)})` }));
  }
  if (state.user && !page.items.some((u) => u.user_id === state.user)) state.user = "";
  sel.value = state.user;
}

async function selectUser(id) {
  state.user = id || "";
  sessionStorage.setItem("trialzone.qa.user", state.user);
  $("test-user").value = state.user;
  for (const b of ["reset", "topup"]) $(b).disabled = !state.user;
  updateRun();
  if (!state.user) { $("balance").textContent = "–"; $("history").replaceChildren(); return; }
  await Promise.all([loadBalance(), loadHistory()]);
}

async function loadBalance() {
  if (!state.user) return;
  try {
    const b = await TZ.json("/v1/me/balance", { headers: asUser() });
    $("balance").textContent = TZ.n(b.available);
    $("held").textContent = b.held ? `(${TZ.n(b.held)} held)` : "";
    const opt = [...$("test-user").options].find((o) => o.value === state.user);
    if (opt) opt.textContent = `${state.user} (${TZ.n(b.available)})`;
  } catch (e) { TZ.say("user-msg", e.message, true); }
}

$("test-user").addEventListener("change", (ev) => selectUser(ev.target.value));
$("new-user").addEventListener("click", async () => {
  try {
    const u = await TZ.json("/v1/qa/test-users", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    await loadUsers();
    await selectUser(u.user_id);
    TZ.say("user-msg", `Made ${u.user_id} with ${TZ.n(u.available)} tokens.`);
  } catch (e) { TZ.say("user-msg", e.message, true); }
});
$("reset").addEventListener("click", async () => {
  try {
    const r = await TZ.json(`/v1/qa/test-users/${encodeURIComponent(state.user)}/reset`, { method: "POST" });
    TZ.say("user-msg", `Balance reset to ${TZ.n(r.balance.available)}.`);
    await loadBalance();
  } catch (e) { TZ.say("user-msg", e.message, true); }
});
$("topup").addEventListener("click", async () => {
  const amount = parseInt($("topup-amount").value, 10);
  try {
    const r = await TZ.json(`/v1/qa/test-users/${encodeURIComponent(state.user)}/top-up`, {
      method: "POST", headers: { "Content-Type": "application/json", "Idempotency-Key": TZ.uuid() },
      body: JSON.stringify({ amount }),
    });
    TZ.say("user-msg", `Added ${TZ.n(amount)}; balance ${TZ.n(r.balance.available)}.`);
    await loadBalance();
  } catch (e) { TZ.say("user-msg", e.message, true); }
});

// --- photo -------------------------------------------------------------------------------------
async function loadSamples() {
  try {
    const samples = await TZ.json("/v1/qa/samples");
    for (const s of samples) {
      const b = TZ.el("button", { type: "button", "data-url": s.url, text: s.name });
      b.addEventListener("click", async () => {
        const res = await fetch(s.url);
        const blob = await res.blob();
        setPhoto(new File([blob], s.url.split("/").pop(), { type: blob.type || "image/jpeg" }));
      });
      $("samples").append(b);
    }
  } catch (e) { /* samples are a convenience */ }
}

function setPhoto(file) {
  if (!file) return;
  state.photo = file;
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(file);
  const img = new Image();
  img.onload = () => { state.image = img; state.strokes = []; drawCanvas(); updateRun(); };
  img.src = state.photoUrl;
  $("original").src = state.photoUrl; $("original").hidden = false;
  $("result").hidden = true; $("download").hidden = true;
}

$("file").addEventListener("change", (ev) => setPhoto(ev.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault(); drop.classList.remove("over");
  if (ev.dataTransfer.files.length) setPhoto(ev.dataTransfer.files[0]);
});

// --- features and their options -------------------------------------------------------------------
async function loadFeatures() {
  state.features = await TZ.json("/v1/features");
  const sel = $("feature");
  sel.replaceChildren();
  for (const f of state.features) {
    const o = TZ.el("option", { value: f.name, text: `${f.title}${f.available ? "" : " (unavailable)"}` });
    if (!f.available) o.disabled = true;
    sel.append(o);
  }
  const first = state.features.find((f) => f.available);
  if (first) sel.value = first.name;
  await featureChanged();
}

function feature() { return state.features.find((f) => f.name === $("feature").value); }

async function featureChanged() {
  const f = feature();
  $("price").textContent = f ? `${TZ.n(f.price)} tokens` : "";
  $("feature-desc").textContent = f ? f.description : "";
  const models = f ? f.models : [];
  $("model").replaceChildren(TZ.el("option", { value: "", text: "default" + (f && f.model ? ` (${f.model})` : "") }),
    ...models.map((m) => TZ.el("option", { value: m, text: m })));
  TZ.show("model-box", models.length > 1);
  TZ.show("styles-box", !!f && f.name === "pet-avatar");
  TZ.show("brush-box", !!f && f.name === "removal");
  if (f && f.name === "pet-avatar" && !$("styles").children.length) await loadStyles();
  drawCanvas();
  updateRun();
}
$("feature").addEventListener("change", featureChanged);

async function loadStyles() {
  const styles = await TZ.json("/v1/features/pet-avatar/styles");
  for (const s of styles) {
    const b = TZ.el("button", { type: "button", "aria-pressed": "false", "data-style": String(s.id), title: s.name },
      TZ.el("img", { src: s.thumbnail_url, alt: "", loading: "lazy" }), s.name);
    b.addEventListener("click", () => {
      state.style = String(s.id);
      for (const other of $("styles").children) other.setAttribute("aria-pressed", String(other === b));
    });
    $("styles").append(b);
  }
  if (styles.length) $("styles").children[0].click();
}

// --- brush: strokes in the photo's pixel coordinates ----------------------------------------------
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
function brushWidth() { return parseInt($("brush-width").value, 10); }
$("brush-width").addEventListener("input", () => { $("brush-px").textContent = brushWidth() + " px"; });

function drawCanvas() {
  const img = state.image;
  if (!img) { canvas.width = 10; canvas.height = 10; return; }
  if (canvas.width !== img.naturalWidth || canvas.height !== img.naturalHeight) {
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  }
  ctx.drawImage(img, 0, 0);
  ctx.strokeStyle = ctx.fillStyle = "rgba(255, 40, 80, 0.55)";
  ctx.lineCap = ctx.lineJoin = "round";
  for (const s of state.drawing ? [...state.strokes, state.drawing] : state.strokes) {
    ctx.lineWidth = s.width;
    ctx.beginPath();
    const [x0, y0] = s.points[0];
    if (s.points.length === 1) { ctx.arc(x0, y0, s.width / 2, 0, Math.PI * 2); ctx.fill(); continue; }
    ctx.moveTo(x0, y0);
    for (const [x, y] of s.points.slice(1)) ctx.lineTo(x, y);
    ctx.stroke();
  }
}

function toImage(ev) {
  const r = canvas.getBoundingClientRect();
  const x = (ev.clientX - r.left) * canvas.width / r.width;
  const y = (ev.clientY - r.top) * canvas.height / r.height;
  const clamp = (v, hi) => Math.round(Math.min(Math.max(v, 0), hi) * 10) / 10;
  return [clamp(x, canvas.width), clamp(y, canvas.height)];
}

canvas.addEventListener("pointerdown", (ev) => {
  if (!state.image) return;
  canvas.setPointerCapture(ev.pointerId);
  state.drawing = { points: [toImage(ev)], width: brushWidth() };
  drawCanvas();
});
canvas.addEventListener("pointermove", (ev) => {
  if (!state.drawing) return;
  state.drawing.points.push(toImage(ev));
  drawCanvas();
});
function endStroke() {
  if (!state.drawing) return;
  state.strokes.push(state.drawing);
  state.drawing = null;
  drawCanvas(); updateRun();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
$("undo").addEventListener("click", () => { state.strokes.pop(); drawCanvas(); updateRun(); });
$("clear").addEventListener("click", () => { state.strokes = []; drawCanvas(); updateRun(); });

// --- run -----------------------------------------------------------------------------------------
function updateRun() {
  const f = feature();
  let ok = !!(state.user && f && f.available && state.photo);
  if (ok && f.name === "removal") ok = state.strokes.length > 0;
  $("run").disabled = !ok;
}

$("run").addEventListener("click", async () => {
  const f = feature();
  const form = new FormData();
  form.append("image", state.photo, state.photo.name || "photo.jpg");
  if ($("model").value) form.append("model", $("model").value);
  if (f.name === "pet-avatar" && state.style !== null) form.append("style", state.style);
  if (f.name === "removal") form.append("strokes", JSON.stringify(state.strokes));
  $("run").disabled = true;
  TZ.say("run-status", `Running ${f.title}…`);
  $("charged").textContent = "–"; $("remaining").textContent = "–";
  const started = performance.now();
  try {
    const res = await TZ.api(`/v1/operations/${encodeURIComponent(f.name)}`, {
      method: "POST", body: form, headers: asUser({ "Idempotency-Key": TZ.uuid() }),
    });
    if (!res.ok) throw new Error(await TZ.problem(res));
    const opId = res.headers.get("X-Operation-Id");
    $("op-id").textContent = opId ? `operation ${opId}` : "";
    $("charged").textContent = TZ.n(res.headers.get("X-Tokens-Charged"));
    if (res.headers.get("X-Tokens-Remaining") !== null) $("remaining").textContent = TZ.n(res.headers.get("X-Tokens-Remaining"));
    if (res.status === 202) {
      TZ.say("run-status", "Accepted by the partner; waiting for the result…");
      await loadHistory();
      await followVendor(opId);
    } else {
      showResult(await res.blob(), f.name);
      TZ.say("run-status", `Done in ${Math.round(performance.now() - started)} ms.`, false);
    }
  } catch (e) {
    TZ.say("run-status", e.message, true);
  } finally {
    updateRun();
    await Promise.all([loadBalance(), loadHistory()]);
  }
});

function showResult(blob, name) {
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  $("result").src = state.resultUrl; $("result").hidden = false;
  const ext = (blob.type.split("/")[1] || "bin").replace("jpeg", "jpg");
  const a = $("download");
  a.href = state.resultUrl; a.download = `${name}-result.${ext}`; a.hidden = false;
}

async function fetchResult(opId, feature) {
  const res = await TZ.api(`/v1/operations/${opId}/result`, { headers: asUser() });
  if (!res.ok) throw new Error(await TZ.problem(res));
  showResult(await res.blob(), feature);
}

async function followVendor(opId) {
  for (let i = 0; i < 120; i++) {
    const op = await TZ.json(`/v1/operations/${opId}`, { headers: asUser() });
    if (op.status === "succeeded") {
      await fetchResult(opId, op.feature);
      $("charged").textContent = TZ.n(op.tokens_charged);
      await loadBalance();
      $("remaining").textContent = $("balance").textContent;
      TZ.say("run-status", "Done (partner).");
      return;
    }
    if (op.status === "failed" || op.status === "expired") {
      TZ.say("run-status", `The partner's operation ${op.status}: ${op.error_detail || op.error_code || ""} (not charged)`, true);
      return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// --- history -----------------------------------------------------------------------------------------
function ms(a, b) { return a && b ? `${Math.max(0, new Date(b) - new Date(a))} ms` : "–"; }

async function loadHistory() {
  if (!state.user) return;
  let page;
  try { page = await TZ.json("/v1/operations?limit=20", { headers: asUser() }); } catch (e) { return; }
  const rows = page.items.map((op) => {
    const link = TZ.el("td");
    if (op.status === "succeeded") {
      const b = TZ.el("button", { type: "button", class: "secondary", text: "Show" });
      b.addEventListener("click", () => fetchResult(op.id, op.feature).catch((e) => TZ.say("run-status", e.message, true)));
      link.append(b);
    }
    const cost = op.tokens_charged ? TZ.n(op.tokens_charged) : (op.tokens_held ? `${TZ.n(op.tokens_held)} held` : "0");
    return TZ.el("tr", { "data-op": op.id },
      TZ.el("td", { text: TZ.when(op.created_at) }),
      TZ.el("td", { text: op.feature }),
      TZ.el("td", { class: "status-" + op.status, text: op.status + (op.error_code ? ` (${op.error_code})` : "") }),
      TZ.el("td", { text: op.model || "–" }),
      TZ.el("td", { text: cost }),
      TZ.el("td", { text: `${ms(op.created_at, op.started_at)} / ${ms(op.started_at, op.finished_at)}` }),
      link);
  });
  $("history").replaceChildren(...rows);
  const pending = page.items.some((op) => op.status === "pending" || op.status === "running");
  clearTimeout(state.polling);
  if (pending) state.polling = setTimeout(() => { loadHistory(); loadBalance(); }, 2000);
}
$("refresh").addEventListener("click", () => { loadHistory(); loadBalance(); });

if (TZ.token()) signIn();
