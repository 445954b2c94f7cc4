// The console's JSON API from its pages (index.html, review.html): every request carries the console's header,
// every answer {"ok": false, "error"} or a non-2xx status becomes an Error with that one line.
"use strict";

async function api(path, options = {}) {
  const headers = { "X-Persense-Console": "1", ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({ ok: false, error: `HTTP ${response.status}` }));
  if (!response.ok || body.ok === false) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function postJson(path, payload) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                     body: JSON.stringify(payload || {}) });
}
