// The hookstream dashboard and partner portal: hash routes over /api/v1, built with textContent only.
const TOKEN_KEY = "hookstream.token";
const main = document.getElementById("main");
let me = null; // whoami of the signed-in token
let timer = null; // the page's refresh, stopped on every route change

// ---- DOM and formatting -------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString([], { hour12: false }) : "—");
const instant = (iso) => {
  const d = new Date(iso);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, "0")}`;
};
const ms = (v) => (v === null || v === undefined ? "—" : v >= 10000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);
const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(v >= 0.9995 || v === 0 ? 0 : 1)} %`);
const num = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString());
// A dead-letter queue's letters not redriven yet: a badge when some wait, "—" when the broker could not say.
const WAITING_COLUMN = { title: "Waiting", num: true, cell: (q) => (q.not_redriven ? badge(String(q.not_redriven)) : num(q.not_redriven)) };
const isOperator = () => me && me.scope !== "partner";
const can = (scope) => me && ["read", "write", "admin"].indexOf(me.scope) >= ["read", "write", "admin"].indexOf(scope);

const TONE = {
  delivered: "ok", healthy: "ok", applied: "ok", pending: "info", retrying: "warn", degraded: "warn",
  held: "warn", failing: "bad", failed: "bad", conflict: "bad", disabled: "bad", skipped: "", idle: "", stale: "",
};
const badge = (text) => h("span", { class: `badge ${TONE[text] ?? ""}` }, text);

function table(columns, rows, onRow) {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title)))),
    h(
      "tbody",
      {},
      rows.length === 0
        ? h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "nothing here"))
        : rows.map((row) =>
            h(
              "tr",
              { class: onRow ? "link" : null, onclick: onRow ? () => onRow(row) : null },
              columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(row))),
            ),
          ),
    ),
  );
}

const panel = (title, ...body) => h("section", { class: "panel" }, title ? h("h2", {}, title) : null, body);
const notice = (tone, text) => h("div", { class: `notice ${tone}`, role: tone === "bad" ? "alert" : "status" }, text);
const kv = (pairs) => h("dl", { class: "kv" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));

function show(...content) {
  main.replaceChildren(...content.flat());
}

// ---- the API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "the admin service is not answering; is `hookstream run admin` up?");
  }
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && path !== "/api/v1/whoami") {
    signOut(data.detail || "your token is no longer valid; sign in again");
    throw new ApiError(401, data.detail);
  }
  if (!response.ok) {
    const retry = response.headers.get("Retry-After");
    throw new ApiError(response.status, `${data.detail || response.statusText}${retry ? ` (retry in ${retry} s)` : ""}`);
  }
  return data;
}

// A button that calls the API, shows the answer next to it and can refresh the page after.
function action(label, run, { tone = "", confirm: question = null, after = null } = {}) {
  const out = h("span", { class: "result" });
  const button = h("button", {
    class: tone,
    onclick: async () => {
      if (question && !window.confirm(question)) return;
      button.disabled = true;
      out.replaceChildren();
      try {
        const result = await run();
        out.replaceChildren(result instanceof Node ? result : notice("ok", result || "done"));
        if (after) setTimeout(after, 900);
      } catch (err) {
        out.replaceChildren(notice("bad", err.message));
      } finally {
        button.disabled = false;
      }
    },
  }, label);
  return h("span", { class: "action" }, button, out);
}

// ---- sign in ------------------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  login(message);
}

function login(message) {
  stopTimer();
  renderChrome();
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "off", placeholder: "hst_…", required: true });
  const out = h("div");
  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        try {
          me = await api("GET", "/api/v1/whoami");
          go(me.scope === "partner" ? "#/portal" : "#/overview");  // one route: the hashchange, or the same page again
        } catch (err) {
          sessionStorage.removeItem(TOKEN_KEY);
          out.replaceChildren(notice("bad", err.message));
        }
      },
    },
    h("label", {}, "Token", input),
    h("p", {}, h("button", { type: "submit" }, "Sign in")),
  );
  show(
    h(
      "div",
      { class: "login panel" },
      h("h1", {}, "Sign in to hookstream"),
      message ? notice("info", message) : null,
      out,
      form,
      h("p", { class: "muted" }, "Operators: `hookstream tokens create NAME --scope read|write|admin`. Partners: ask your operator for a token of your endpoint."),
    ),
  );
  input.focus();
}

function renderChrome() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!me) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  const links = isOperator()
    ? [["overview", "Overview"], ["deliveries", "Deliveries"], ["endpoints", "Endpoints"], ["dead-letters", "Dead letters"], ["consumers", "Consumers"], ["orders", "Orders"], ["alerts", "Alerts"], ...(can("admin") ? [["audit", "Audit"]] : [])]
    : [["portal", "Your endpoint"], ["deliveries", "Deliveries"]];
  const current = location.hash.split("/")[1] || "";
  nav.replaceChildren(...links.map(([path, title]) => h("a", { href: `#/${path}`, class: current === path ? "active" : null }, title)));
  who.replaceChildren(h("span", {}, `${me.name} · ${me.scope}`), h("button", { onclick: () => signOut("signed out") }, "Sign out"));
}

// ---- pages --------------------------------------------------------------------------------------

function sparkline(values, width = 120, height = 28) {
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join(" ");
  const el = svg("svg", { width, height, class: "spark", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "webhooks per second, last 5 minutes" });
  el.append(svg("polyline", { points, fill: "none", stroke: "#3559e0", "stroke-width": 1.5 }));
  return el;
}

async function overview() {
  const updated = h("span", { class: "muted" });
  const body = h("div");
  show(h("h1", {}, "Overview ", updated), body);
  const draw = async () => {
    try {
      const o = await api("GET", "/api/v1/overview");
      const unhealthy = o.endpoints.filter((e) => e.state === "failing" || e.state === "disabled").length;
      const waiting = o.dead_letters.reduce((n, q) => n + (q.not_redriven || 0), 0);
      const queues = o.dead_letters.filter((q) => q.not_redriven > 0).length;
      const lag = o.consumers.reduce((n, c) => n + (c.lag || 0), 0);
      body.replaceChildren(
        h(
          "div",
          { class: "grid" },
          h("section", { class: "panel", id: "intake" }, h("h2", {}, "Webhooks in"), h("div", { class: "figure" }, o.intake.per_s.toFixed(1), h("small", {}, "/s")), h("div", { class: "sub" }, `over the last ${o.intake.rate_window_s} s`)),
          h("section", { class: "panel", id: "latency" }, h("h2", {}, "Webhook → partner"), h("div", { class: "figure" }, ms(o.latency.delivery.p95_ms), h("small", {}, "p95")), h("div", { class: "sub" }, `p50 ${ms(o.latency.delivery.p50_ms)} · p99 ${ms(o.latency.delivery.p99_ms)} · ${num(o.latency.delivery.samples)} deliveries, last ${o.latency.window_s / 60} min`), h("div", { class: "sub" }, `webhook → normalized: p50 ${ms(o.latency.ingest.p50_ms)} · p95 ${ms(o.latency.ingest.p95_ms)}`)),
          h("section", { class: "panel", id: "success" }, h("h2", {}, "Delivery success"), h("div", { class: "figure" }, pct(o.deliveries.success_rate)), h("div", { class: "sub" }, `${num(o.deliveries.succeeded)} of ${num(o.deliveries.attempts)} attempts, last ${o.deliveries.window_s / 60} min · ${num(o.deliveries.pending)} pending · ${num(o.deliveries.retrying)} retrying`)),
          h("section", { class: "panel", id: "attention" }, h("h2", {}, "Needs attention"), h("div", { class: "figure" }, num(unhealthy + queues)), h("div", { class: "sub" }, `${unhealthy} endpoint(s) failing or disabled · ${num(waiting)} dead letter(s) waiting in ${queues} queue(s) · total lag ${num(lag)}`)),
        ),
        panel(
          "Webhooks per channel",
          table(
            [
              { title: "Channel", cell: (c) => c.channel },
              { title: "Now", num: true, cell: (c) => `${c.per_s.toFixed(2)}/s` },
              { title: "Last 5 min", cell: (c) => sparkline(c.series) },
              { title: "Received", num: true, cell: (c) => num(c.webhooks) },
            ],
            o.intake.channels,
          ),
        ),
        h(
          "div",
          { class: "grid" },
          panel(
            "Consumer lag",
            table(
              [
                { title: "Service", cell: (c) => c.name },
                { title: "Members", num: true, cell: (c) => (c.error ? "—" : num(c.members)) },
                { title: "Lag", num: true, cell: (c) => (c.error ? h("span", { class: "muted" }, "no input yet") : num(c.lag)) },
              ],
              o.consumers,
              () => go("#/consumers"),
            ),
          ),
          panel(
            "Dead letters",
            table(
              [
                { title: "Service", cell: (q) => q.consumer },
                WAITING_COLUMN,
                { title: "Kept", num: true, cell: (q) => num(q.dead_letters) },
              ],
              o.dead_letters,
              (q) => go(`#/dead-letters/${encodeURIComponent(q.consumer)}`),
            ),
          ),
        ),
        panel("Endpoints", endpointTable(o.endpoints)),
      );
      updated.replaceChildren(h("span", { class: "live" }), `live · ${new Date(o.generated_at).toLocaleTimeString([], { hour12: false })}`);
    } catch (err) {
      updated.replaceChildren(h("span", { class: "live stale" }), err.message);
    }
  };
  await draw();
  timer = setInterval(() => document.visibilityState === "visible" && draw(), 3000);
}

function endpointTable(endpoints) {
  return table(
    [
      { title: "Endpoint", cell: (e) => [h("div", {}, e.name), h("div", { class: "sub" }, e.url)] },
      { title: "Health", cell: (e) => [badge(e.state), e.circuit.state === "open" ? [" ", h("span", { class: "badge bad", title: `open on ${e.circuit.instances} delivery instance(s) since ${when(e.circuit.since)}` }, "circuit open")] : null, e.disabled_reason ? h("div", { class: "sub" }, e.disabled_reason) : null, e.failing_since ? h("div", { class: "sub" }, `failing since ${when(e.failing_since)}`) : null] },
      { title: "Success, 15 min", num: true, cell: (e) => `${pct(e.success_rate)} of ${num(e.attempts)}` },
      { title: "Last failure", cell: (e) => (e.last_failure ? [h("div", {}, e.last_failure.explanation), h("div", { class: "sub" }, when(e.last_failure.at))] : "—") },
    ],
    endpoints,
    (e) => go(`#/endpoints/${encodeURIComponent(e.subscription_id)}`),
  );
}

async function endpoints() {
  const data = await api("GET", "/api/v1/endpoints");
  show(h("h1", {}, "Endpoints"), panel(null, endpointTable(data.endpoints)), can("write") ? newSubscriptionForm() : null);
}

function newSubscriptionForm() {
  const name = h("input", { name: "name", required: true, placeholder: "acme-erp" });
  const url = h("input", { name: "url", required: true, type: "url", size: 40, placeholder: "https://partner.example.com/hooks" });
  const types = h("input", { name: "event_types", required: true, value: "order.*", size: 28 });
  const out = h("div");
  return panel(
    "New endpoint",
    out,
    h(
      "form",
      {
        class: "inline",
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            const created = await api("POST", "/api/v1/subscriptions", { name: name.value, url: url.value, event_types: types.value.split(",").map((t) => t.trim()).filter(Boolean) });
            out.replaceChildren(secretNotice(created.secret, `Endpoint ${created.id} created.`), h("p", {}, h("a", { href: `#/endpoints/${created.id}` }, "open it")));
          } catch (err) {
            out.replaceChildren(notice("bad", err.message));
          }
        },
      },
      h("label", {}, "Name", name), h("label", {}, "URL", url), h("label", {}, "Event types (comma-separated)", types), h("button", { type: "submit" }, "Create"),
    ),
  );
}

const secretNotice = (secret, lead) => h("div", { class: "notice ok" }, lead, " Its signing secret, shown this once: ", h("pre", { class: "secret", id: "secret" }, secret));

function testResult(r) {
  return notice(r.delivered ? "ok" : "bad", `${r.explanation}${r.response_excerpt ? ` — answered: ${r.response_excerpt}` : ""}`);
}

function endpointActions(sub, refresh) {
  const id = encodeURIComponent(sub.id);
  const since = h("input", { type: "datetime-local", name: "since", value: new Date(Date.now() - 3600e3 - new Date().getTimezoneOffset() * 60e3).toISOString().slice(0, 16) });
  const skipped = h("input", { type: "checkbox", name: "include_skipped" });
  const reason = h("input", { name: "reason", placeholder: "why", value: "disabled by an operator" });
  const operatorOnly = isOperator() && can("write");
  return [
    h(
      "div",
      { class: "actions" },
      action("Send test event", async () => testResult(await api("POST", `/api/v1/subscriptions/${id}/test`))),
      action("Rotate secret", async () => {
        const r = await api("POST", `/api/v1/subscriptions/${id}/rotate-secret`);
        return secretNotice(r.secret, `Secret rotated; the old one keeps verifying for ${r.old_secrets_valid_for_s / 3600} h.`);
      }, { tone: "secondary", confirm: "Rotate the signing secret? Update your verifier within 24 hours." }),
      operatorOnly && sub.enabled ? [h("label", {}, "Reason", reason), action("Disable", async () => (await api("POST", `/api/v1/subscriptions/${id}/disable`, { reason: reason.value }), "disabled"), { tone: "danger", after: refresh })] : null,
      operatorOnly && !sub.enabled ? action("Enable", async () => (await api("POST", `/api/v1/subscriptions/${id}/enable`), "enabled"), { after: refresh }) : null,
    ),
    h(
      "div",
      { class: "actions" },
      h("label", {}, "Resend failed deliveries since", since),
      h("label", { class: "check" }, skipped, "and skipped ones"),
      action("Recover", async () => {
        const r = await api("POST", `/api/v1/subscriptions/${id}/recover`, { since: new Date(since.value).toISOString(), include_skipped: skipped.checked });
        return `${r.queued} deliveries queued again`;
      }, { tone: "secondary" }),
    ),
  ];
}

async function endpoint(id) {
  const refresh = () => endpoint(id);
  const [sub, health] = await Promise.all([api("GET", `/api/v1/subscriptions/${encodeURIComponent(id)}`), api("GET", "/api/v1/endpoints")]);
  const e = health.endpoints.find((x) => x.subscription_id === sub.id) || {};
  const recent = await api("GET", `/api/v1/deliveries?subscription_id=${encodeURIComponent(id)}&limit=20`);
  show(
    h("h1", {}, sub.name, " ", badge(e.state || (sub.enabled ? "idle" : "disabled"))),
    panel(null, kv([["URL", sub.url], ["Events", sub.event_types.join(", ")], ["Content type", sub.content_type], ["Timeout", ms(sub.timeout_ms)], ["Rate limit", sub.rate_limit_per_s ? `${sub.rate_limit_per_s}/s` : "none"], ["Signing secrets", String(sub.secrets)], ["Success, 15 min", `${pct(e.success_rate)} of ${num(e.attempts)} attempts`], ["Failing since", e.failing_since ? when(e.failing_since) : null], ["Circuit breaker", e.circuit ? (e.circuit.state === "open" ? `open on ${e.circuit.instances} delivery instance(s) since ${when(e.circuit.since)}: deliveries wait for a probe to succeed` : "closed") : null], ["Disabled because", sub.disabled_reason], ["Last failure", e.last_failure ? `${when(e.last_failure.at)}: ${e.last_failure.explanation}` : null]])),
    panel("Actions", endpointActions(sub, refresh)),
    panel("Recent deliveries", deliveryTable(recent.deliveries), h("p", {}, h("a", { href: `#/deliveries?subscription_id=${encodeURIComponent(id)}` }, "all deliveries of this endpoint"))),
  );
}

function deliveryTable(rows) {
  return table(
    [
      { title: "Delivery", cell: (d) => h("code", {}, d.id) },
      { title: "Order", cell: (d) => d.order_id },
      { title: "Event", cell: (d) => d.event_type },
      { title: "Status", cell: (d) => badge(d.status) },
      { title: "Attempts", num: true, cell: (d) => num(d.attempts) },
      { title: "Last error", cell: (d) => d.last_error || "" },
      { title: "Updated", cell: (d) => when(d.updated_at) },
    ],
    rows,
    (d) => go(`#/deliveries/${encodeURIComponent(d.id)}`),
  );
}

async function deliveries(query) {
  const params = new URLSearchParams(query);
  const form = h("form", { class: "inline", id: "filters" });
  const field = (name, label, input) => {
    input.name = name;
    input.value = params.get(name) || "";
    form.append(h("label", {}, label, input));
  };
  if (isOperator()) {
    const subs = (await api("GET", "/api/v1/subscriptions")).subscriptions;
    field("subscription_id", "Endpoint", h("select", {}, h("option", { value: "" }, "any"), subs.map((s) => h("option", { value: s.id }, s.name))));
    field("order_id", "Order", h("input", { placeholder: "shopify:1001" }));
  }
  field("status", "Status", h("select", {}, ["", "pending", "retrying", "delivered", "failed", "skipped"].map((s) => h("option", { value: s }, s || "any"))));
  field("since", "Since", h("input", { type: "datetime-local" }));
  form.append(h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) chosen.set(k, k === "since" ? new Date(v).toISOString() : v);
    go(`#/deliveries?${chosen}`);
  });
  const asked = new URLSearchParams();
  for (const [k, v] of params) if (v) asked.set(k, k === "since" && !v.endsWith("Z") && !v.includes("+") ? new Date(v).toISOString() : v);
  if (params.get("since")) form.elements.since.value = toLocalInput(params.get("since"));
  let result;
  try {
    result = deliveryTable((await api("GET", `/api/v1/deliveries?${asked}`)).deliveries);
  } catch (err) {
    result = notice("bad", err.message);
  }
  show(h("h1", {}, "Deliveries"), panel(null, form, result));
}

function toLocalInput(iso) {
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
}

async function delivery(id) {
  const d = await api("GET", `/api/v1/deliveries/${encodeURIComponent(id)}`);
  const retriable = d.status === "failed" || d.status === "skipped";
  show(
    h("h1", {}, "Delivery ", h("code", {}, d.id), " ", badge(d.status)),
    panel(null, kv([["Endpoint", isOperator() ? h("a", { href: `#/endpoints/${encodeURIComponent(d.subscription_id)}` }, d.subscription_id) : d.subscription_id], ["Order", isOperator() ? h("a", { href: `#/orders/${encodeURIComponent(d.order_id)}` }, d.order_id) : d.order_id], ["Event", `${d.event_type} (${d.event_id})`], ["Webhook id", d.webhook_id], ["Attempts", String(d.attempts)], ["Last error", d.last_error], ["Created", when(d.created_at)], ["Updated", when(d.updated_at)]]),
      can("write") || !isOperator() ? h("div", { class: "actions" }, retriable ? action("Retry now", async () => (await api("POST", `/api/v1/deliveries/${encodeURIComponent(d.id)}/retry`), "queued: it goes out again in a moment"), { after: route }) : h("span", { class: "muted" }, d.status === "delivered" ? "delivered: nothing to retry" : "being delivered: retries are scheduled")) : null),
    panel(
      "Attempts",
      table(
        [
          { title: "#", num: true, cell: (a) => a.attempt },
          { title: "When", cell: (a) => when(a.attempted_at) },
          { title: "Answer", cell: (a) => (a.status_code ? badge(String(a.status_code)) : badge("no answer")) },
          { title: "Latency", num: true, cell: (a) => ms(a.latency_ms) },
          { title: "What it means", cell: (a) => a.explanation },
          { title: "Response", cell: (a) => (a.response_excerpt ? h("pre", {}, a.response_excerpt) : "") },
        ],
        d.attempt_log,
      ),
    ),
  );
}

async function deadLetterQueues() {
  const data = await api("GET", "/api/v1/dead-letters");
  show(
    h("h1", {}, "Dead letters"),
    panel(null, table(
      [
        { title: "Service", cell: (q) => q.consumer },
        { title: "Topic", cell: (q) => h("code", {}, q.topic) },
        WAITING_COLUMN,
        { title: "Kept", num: true, cell: (q) => num(q.dead_letters) },
      ],
      data.queues,
      (q) => go(`#/dead-letters/${encodeURIComponent(q.consumer)}`),
    )),
  );
}

async function deadLetters(consumer) {
  const path = `/api/v1/dead-letters/${encodeURIComponent(consumer)}`;
  const data = await api("GET", `${path}?limit=200`); // one page: a dead-letter topic can hold millions
  const picked = new Set();
  const rows = data.dead_letters.map((d) => {
    const box = h("input", { type: "checkbox", "aria-label": `select ${d.position}`, disabled: d.redriven, onchange: (e) => (e.target.checked ? picked.add(d.position) : picked.delete(d.position)) });
    return h(
      "details",
      { class: "panel letter", "data-position": d.position },
      h("summary", {}, box, " ", h("code", {}, d.position), " ", d.redriven ? badge("redriven") : badge("failed"), " ", h("strong", {}, d.event_id || "(no event id)"), " — ", d.reason),
      kv([["Key", d.key], ["Attempts", String(d.attempts)], ["Came from", d.origin], ["First failed", when(d.first_failed_at)]]),
      h("h2", {}, "Headers"),
      h("pre", {}, Object.entries(d.headers).map(([k, v]) => `${k}: ${v}`).join("\n")),
      h("h2", {}, `Payload (${d.payload_encoding})`),
      h("pre", { class: "payload" }, prettyPayload(d.payload, d.payload_encoding)),
      can("write") && !d.redriven ? action("Redrive this one", async () => redriven(await api("POST", `${path}/redrive`, { positions: [d.position] })), { after: route }) : null,
    );
  });
  const waiting = data.dead_letters.filter((d) => !d.redriven).length;
  show(
    h("h1", {}, `Dead letters of ${data.consumer}`),
    h("p", { class: "muted" }, h("code", {}, data.topic), ` · ${waiting} waiting of ${data.dead_letters.length}${data.next ? " shown (the first 200; more follow)" : ""}. A redrive sends a letter back to the service's input through its redrive topic; it is processed once (the service dedupes by event id).`),
    can("write")
      ? h("div", { class: "actions" },
          action("Redrive selected", async () => {
            if (picked.size === 0) throw new Error("tick the dead letters to redrive first");
            return redriven(await api("POST", `${path}/redrive`, { positions: [...picked] }));
          }, { after: route }),
          action("Redrive all waiting", async () => redriven(await api("POST", `${path}/redrive`, { all: true })), { tone: "secondary", confirm: `Redrive every waiting dead letter of ${data.consumer}${data.next ? " (more than the 200 shown)" : ` (${waiting})`}?`, after: route }))
      : null,
    rows.length ? rows : panel(null, h("p", { class: "muted" }, "nothing has been dead-lettered here")),
  );
}

const redriven = (r) => `${r.redriven} dead letter(s) sent back: ${r.positions.join(", ")}`;

function prettyPayload(payload, encoding) {
  if (encoding !== "utf-8") return payload;
  try {
    return JSON.stringify(JSON.parse(payload), null, 2);
  } catch {
    return payload;
  }
}

async function consumers() {
  const data = await api("GET", "/api/v1/consumers");
  show(
    h("h1", {}, "Consumers"),
    data.consumers.map((c) => {
      const at = h("input", { type: "datetime-local", name: "to_datetime", step: 1, value: toLocalInput(new Date(Date.now() - 3600e3).toISOString()) });
      const plan = h("div", { class: "plan" });
      const replay = (dry) => async () => {
        const r = await api("POST", `/api/v1/consumers/${encodeURIComponent(c.name)}/replay`, { to_datetime: new Date(at.value).toISOString(), dry_run: dry });
        plan.replaceChildren(table(
          [
            { title: "Partition", num: true, cell: (p) => p.partition },
            { title: "Now at", num: true, cell: (p) => (p.current === null ? "—" : num(p.current)) },
            { title: "Reset to", num: true, cell: (p) => num(p.target) },
            { title: "Reprocessed", num: true, cell: (p) => num(p.reprocessed) },
          ],
          r.partitions,
        ));
        return dry ? `dry run: ${num(r.reprocessed)} record(s) would be processed again` : `replayed: ${num(r.reprocessed)} record(s) will be processed again when ${c.name} starts`;
      };
      return panel(
        `${c.name}`,
        c.error ? notice("info", c.error) : [
          h("p", { class: "muted" }, `group ${c.group} on ${c.input_topic} · ${c.members} member(s) · lag ${num(c.lag)}`),
          table(
            [
              { title: "Partition", num: true, cell: (p) => p.partition },
              { title: "Committed", num: true, cell: (p) => (p.committed === null ? "—" : num(p.committed)) },
              { title: "End", num: true, cell: (p) => num(p.end) },
              { title: "Lag", num: true, cell: (p) => num(p.lag) },
            ],
            c.partitions,
          ),
          can("admin")
            ? h("div", { class: "actions replay" }, h("label", {}, "Replay from", at), action("Preview (dry run)", replay(true), { tone: "secondary" }), action("Replay", replay(false), { tone: "danger", confirm: `Reset ${c.name}'s group to ${at.value}? The service must be stopped.` }))
            : null,
          plan,
        ],
      );
    }),
  );
}

async function orders(id) {
  const input = h("input", { name: "order_id", placeholder: "shopify:1001", value: id || "", size: 32 });
  const search = h("form", { class: "inline", onsubmit: (e) => (e.preventDefault(), go(`#/orders/${encodeURIComponent(input.value.trim())}`)) }, h("label", {}, "Order id", input), h("button", { type: "submit" }, "Look up"));
  if (!id) return show(h("h1", {}, "Orders"), panel(null, search));
  let o;
  let endpointNames = {};
  try {
    o = await api("GET", `/api/v1/orders/${encodeURIComponent(id)}`);
    endpointNames = Object.fromEntries((await api("GET", "/api/v1/subscriptions")).subscriptions.map((s) => [s.id, s.name]));
  } catch (err) {
    return show(h("h1", {}, "Orders"), panel(null, search, notice("bad", err.message)));
  }
  const events = [];
  for (const t of o.timeline) {
    if (t.received_at) events.push({ at: t.received_at, who: "ingress", text: `received ${t.type} from ${t.channel} (event ${t.event_id})` });
    events.push({ at: t.recorded_at, who: "normalizer", text: `${t.type}: `, tone: t.outcome, tail: `${t.sequence !== null ? ` sequence ${t.sequence}` : ""}${t.detail ? ` — ${t.detail}` : ""}` });
  }
  for (const s of o.workflow_steps) events.push({ at: s.finished_at, who: s.service, text: `${s.step}: `, tone: "applied", tail: ` ${summarize(s.result)}` });
  for (const d of o.deliveries) {
    for (const a of d.attempt_log) events.push({ at: a.attempted_at, who: "delivery", text: `${d.event_type} to ${endpointNames[d.subscription_id] || d.subscription_id}, attempt ${a.attempt}: `, tone: a.status_code >= 200 && a.status_code < 300 ? "delivered" : "failed", tail: ` ${a.explanation}`, link: `#/deliveries/${encodeURIComponent(d.id)}` });
  }
  events.sort((a, b) => new Date(a.at) - new Date(b.at));
  const order = o.order || {};
  show(
    h("h1", {}, `Order ${id} `, order.status ? badge(order.status) : null),
    panel(null, search, kv([["Channel", order.channel], ["Sequence", order.sequence !== undefined ? String(order.sequence) : null], ["Held events", order.held !== undefined ? String(order.held) : null], ["First seen", when(order.first_seen_at)], ["Risk", o.risk ? `score ${o.risk.score}, ${o.risk.verdict} by ${o.risk.decided_by}${o.risk.reasons && o.risk.reasons.length ? ` (${o.risk.reasons.join("; ")})` : ""}` : null], ["Known as", Object.entries(o.refs || {}).map(([k, v]) => `${k}: ${v}`).join(" · ") || null], ["Documents", o.documents.map((d) => `${d.kind} ${d.number} ${d.total} ${d.currency}`).join(" · ") || null]])),
    panel(
      "Timeline across services",
      h("ol", { class: "timeline" }, events.map((e) => h("li", {}, h("span", { class: "when" }, instant(e.at)), h("strong", {}, e.who), h("span", {}, e.text, e.tone ? badge(e.tone) : null, e.tail || "", e.link ? [" ", h("a", { href: e.link }, "details")] : null)))),
    ),
  );
}

function summarize(result) {
  if (result === null || typeof result !== "object") return String(result ?? "");
  return Object.entries(result).slice(0, 4).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
}

function told(e) {
  const parts = e.notified.length ? [e.notified.join(", ")] : [];
  for (const u of e.undelivered) {
    const what = u.state === "failed" ? `${u.notifier}: given up after ${u.attempts} tries` : `${u.notifier}: trying (${u.attempts} so far)`;
    parts.push(h("div", { class: u.state === "failed" ? "bad-text" : "muted", title: u.last_error || "" }, what));
  }
  return parts.length ? h("div", {}, ...parts) : h("span", { class: "muted" }, "nobody (cooldown or no notifier)");
}

async function alertsPage() {
  const data = await api("GET", "/api/v1/alerts");
  show(
    h("h1", {}, "Alerts"),
    panel(
      "Firing now",
      table(
        [
          { title: "Since", cell: (a) => when(a.changed_at) },
          { title: "Rule", cell: (a) => badge(a.rule) },
          { title: "What", cell: (a) => a.summary },
        ],
        data.firing,
      ),
    ),
    panel(
      "History",
      table(
        [
          { title: "When", cell: (e) => when(e.at) },
          { title: "", cell: (e) => badge(e.kind === "fired" ? "failing" : "healthy") },
          { title: "Rule", cell: (e) => e.rule },
          { title: "What", cell: (e) => e.summary },
          { title: "Told", cell: told },
        ],
        data.history,
      ),
    ),
  );
}

async function auditLog() {
  const data = await api("GET", "/api/v1/audit?limit=200");
  show(h("h1", {}, "Audit log"), panel(null, table(
    [
      { title: "When", cell: (e) => when(e.at) },
      { title: "Who", cell: (e) => e.actor },
      { title: "What", cell: (e) => e.action },
      { title: "Target", cell: (e) => h("code", {}, e.target) },
      { title: "After", cell: (e) => (e.after ? h("pre", {}, JSON.stringify(e.after, null, 1)) : "") },
    ],
    data.entries,
  )));
}

async function portal() {
  const [subs, health] = await Promise.all([api("GET", "/api/v1/subscriptions"), api("GET", "/api/v1/endpoints")]);
  const sub = subs.subscriptions[0];
  const e = health.endpoints[0] || {};
  const failed = await api("GET", "/api/v1/deliveries?status=failed&limit=20");
  const recent = await api("GET", "/api/v1/deliveries?limit=20");
  show(
    h("h1", {}, `${sub.name} `, badge(e.state || "idle")),
    e.last_failure ? notice("bad", `Last failure (${when(e.last_failure.at)}): ${e.last_failure.explanation}`) : notice("ok", "No failed attempts in the last 15 minutes."),
    panel(null, kv([["URL", sub.url], ["Events", sub.event_types.join(", ")], ["Success, 15 min", `${pct(e.success_rate)} of ${num(e.attempts)} attempts`], ["Failing since", e.failing_since ? when(e.failing_since) : null], ["Disabled because", sub.disabled_reason]])),
    panel("Actions", endpointActions(sub, portal)),
    panel("Failed deliveries", deliveryTable(failed.deliveries)),
    panel("Recent deliveries", deliveryTable(recent.deliveries)),
  );
}

// ---- routing ------------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/overview$/, overview, true],
  [/^#\/deliveries$/, (m, q) => deliveries(q), false],
  [/^#\/deliveries\/(.+)$/, (m) => delivery(decodeURIComponent(m[1])), false],
  [/^#\/endpoints$/, endpoints, true],
  [/^#\/endpoints\/(.+)$/, (m) => endpoint(decodeURIComponent(m[1])), true],
  [/^#\/dead-letters$/, deadLetterQueues, true],
  [/^#\/dead-letters\/(.+)$/, (m) => deadLetters(decodeURIComponent(m[1])), true],
  [/^#\/consumers$/, consumers, true],
  [/^#\/orders$/, () => orders(null), true],
  [/^#\/orders\/(.+)$/, (m) => orders(decodeURIComponent(m[1])), true],
  [/^#\/audit$/, auditLog, true],
  [/^#\/alerts$/, alertsPage, true],
  [/^#\/portal$/, portal, false],
];

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function stopTimer() {
  if (timer) clearInterval(timer);
  timer = null;
}

// One page at a time, in the order they were asked for: a slow page finishes drawing before the
// next one starts, so the page the user went to last is the one left on screen.
let routing = Promise.resolve();

function route() {
  routing = routing.then(drawRoute, drawRoute);
  return routing;
}

async function drawRoute() {
  stopTimer();
  if (!sessionStorage.getItem(TOKEN_KEY)) return login();
  if (!me) {
    try {
      me = await api("GET", "/api/v1/whoami");
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      return login(err.message);
    }
  }
  const [path, query] = (location.hash || "#/").split("?");
  const home = isOperator() ? "#/overview" : "#/portal";
  const found = ROUTES.map(([re, page, operatorOnly]) => [path.match(re), page, operatorOnly]).find(([m]) => m);
  if (!found || (found[2] && !isOperator())) {
    location.replace(home);
    return;
  }
  renderChrome();
  try {
    await found[1](found[0], query || "");
  } catch (err) {
    if (err.status !== 401) show(notice("bad", err.message));
  }
}

window.addEventListener("hashchange", route);
route();
