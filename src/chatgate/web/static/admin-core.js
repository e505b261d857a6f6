// Shared by every section of the admin panel: building DOM safely, calling the
// /v1 API with the staff session, dates, confirmations, copying, form fields.
//
// Everything the API returns is put on the page as text (textContent, attribute
// values), never as HTML.

const SESSION_KEY = "chatgate:admin";

// -- DOM ---------------------------------------------------------------------

// h("button", {type: "button", class: "x", onclick: fn}, "Text", child, [more])
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "text") {
      el.textContent = value;
    } else if (name === "value" || name === "checked" || name === "hidden" || name === "disabled" || name === "selected") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let lastId = 0;
export function uid(prefix) {
  lastId += 1;
  return `${prefix || "id"}-${lastId}`;
}

// Text read by screen readers but not shown (e.g. which row a "Revoke" button is in).
export function hiddenText(text) {
  return h("span", { class: "visually-hidden" }, text);
}

// -- session -------------------------------------------------------------------

export function loadSession() {
  try {
    const session = JSON.parse(window.sessionStorage.getItem(SESSION_KEY) || "null");
    return session && typeof session.token === "string" ? session : null;
  } catch (e) {
    return null;
  }
}

export function saveSession(session) {
  try {
    if (session) window.sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    else window.sessionStorage.removeItem(SESSION_KEY);
  } catch (e) {
    /* storage blocked: the session lasts as long as this page */
  }
}

// -- API -------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, error, retryAfter) {
    super((error && error.message) || `The server answered ${status}.`);
    this.status = status;
    this.code = (error && error.code) || (status === 0 ? "network" : "error");
    this.fields = (error && error.fields) || {};
    this.reason = (error && error.reason) || null;
    this.retryAfter = retryAfter;
  }
}

const listeners = { unauthenticated: [] };

// Called when the staff session is refused (401 on a call made with it).
export function onUnauthenticated(fn) {
  listeners.unauthenticated.push(fn);
}

// api("GET", "/v1/projects") → the parsed body; throws ApiError.
// options.auth === false sends no session; options.query adds a query string.
export async function api(method, path, body, options) {
  const opts = options || {};
  const session = loadSession();
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.auth !== false && session) headers.Authorization = session.token;
  let url = path;
  if (opts.query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(opts.query)) {
      if (value !== null && value !== undefined && value !== "") params.set(name, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, { code: "network", message: "Chatgate could not be reached. Check your connection and try again." });
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
  }
  if (res.ok) return data;
  const error = (data && data.error) || null;
  const retry = Number(res.headers.get("Retry-After") || (error && error.retryAfter) || 0) || null;
  const failure = new ApiError(res.status, error, retry);
  if (res.status === 401 && opts.auth !== false && headers.Authorization) {
    listeners.unauthenticated.forEach((fn) => fn(failure));
  }
  throw failure;
}

// A sentence for an operator: the API's own message, with the wait for a 429.
export function errorText(err) {
  if (!(err instanceof ApiError)) return "Something went wrong in the admin panel. Reload the page and try again.";
  if (err.code === "rate_limited") {
    const wait = err.retryAfter ? ` Try again in ${err.retryAfter} second${err.retryAfter === 1 ? "" : "s"}.` : " Wait a moment and try again.";
    return `Too many attempts.${wait}`;
  }
  return err.message;
}

// -- messages --------------------------------------------------------------------

// A region that announces what just happened ("Saved.", or an error).
export function statusArea() {
  const el = h("div", { class: "status", role: "status" });
  el.show = (kind, text) => {
    el.className = `status ${kind}`;
    el.textContent = text;
  };
  el.error = (err) => el.show("bad", errorText(err));
  el.ok = (text) => el.show("good", text);
  el.info = (text) => el.show("info", text);
  el.clear = () => {
    el.className = "status";
    el.textContent = "";
  };
  return el;
}

// An alert for a section that could not be loaded.
export function errorBox(err) {
  return h("div", { class: "status bad", role: "alert" }, errorText(err));
}

// -- dates -------------------------------------------------------------------------

export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "never");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, String(iso));
  const pad = (n) => String(n).padStart(2, "0");
  const text = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return h("time", { datetime: iso, title: iso }, text);
}

// -- confirmation dialog -------------------------------------------------------------

// confirmAction({title, text, confirm}) → Promise<boolean>; a modal <dialog>, Escape cancels.
// While closed, the dialog has no name: its words are not mistaken for a field's label.
export function confirmAction({ title, text, confirm }) {
  const dialog = document.getElementById("confirm");
  const form = document.getElementById("confirm-form");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = confirm || "Confirm";
  dialog.setAttribute("aria-labelledby", "confirm-title");
  dialog.setAttribute("aria-describedby", "confirm-text");
  const opener = document.activeElement;
  const forget = () => {
    dialog.removeAttribute("aria-labelledby");
    dialog.removeAttribute("aria-describedby");
    document.getElementById("confirm-title").textContent = "Are you sure?";
    document.getElementById("confirm-text").textContent = "";
  };
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener("close", done);
      form.removeEventListener("submit", forget);
      dialog.removeEventListener("cancel", forget);
      forget();
      resolve(dialog.returnValue === "ok");
      if (opener && document.contains(opener)) opener.focus();
    };
    dialog.returnValue = "cancel";
    dialog.addEventListener("close", done);
    // The answer is given (a button, or Escape) before the close event comes: forget at once.
    form.addEventListener("submit", forget);
    dialog.addEventListener("cancel", forget);
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

// -- copying ---------------------------------------------------------------------------

async function writeClipboard(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (e) {
    const area = h("textarea", { class: "offscreen", "aria-hidden": "true", tabindex: "-1" });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (ignored) {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

// A "Copy" button; `extra` is read only by screen readers ("Copy" + " Node.js example").
export function copyButton(getText, extra) {
  const note = h("span", { class: "copy-note", role: "status" });
  const button = h("button", { type: "button", class: "copy" }, "Copy", extra ? hiddenText(` ${extra}`) : null);
  button.addEventListener("click", async () => {
    const ok = await writeClipboard(getText());
    note.textContent = ok ? "Copied." : "Copy failed: select the text and copy it yourself.";
    window.setTimeout(() => {
      note.textContent = "";
    }, 4000);
  });
  return h("span", { class: "copy-wrap" }, button, note);
}

// -- form fields -------------------------------------------------------------------------

// A labelled control with its one-line explanation and a slot for the API's complaint.
// kind: "text" | "number" | "email" | "password" | "textarea" | "checkbox" | "select" | "search"
export function field({ label, kind, name, value, hint, options, attrs, required }) {
  const id = uid(name || "field");
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ");
  const base = { id, name, "aria-describedby": describedBy, required: required || null, ...(attrs || {}) };
  let control;
  if (kind === "textarea") {
    control = h("textarea", { rows: 3, ...base });
    control.value = value || "";
  } else if (kind === "select") {
    control = h("select", base, (options || []).map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  } else if (kind === "checkbox") {
    control = h("input", { type: "checkbox", ...base, checked: !!value });
  } else {
    const type = kind === "number" ? "text" : kind || "text";
    control = h("input", { type, ...base, inputmode: kind === "number" ? "numeric" : null });
    control.value = value === null || value === undefined ? "" : String(value);
  }
  const labelEl = h("label", { for: id }, label);
  const hintEl = hint ? h("p", { class: "hint", id: hintId }, hint) : null;
  const errorEl = h("p", { class: "field-error", id: errorId, hidden: true });
  const wrap =
    kind === "checkbox"
      ? h("div", { class: "field check" }, control, labelEl, hintEl, errorEl)
      : h("div", { class: "field" }, labelEl, control, hintEl, errorEl);
  return {
    wrap,
    control,
    setError(text) {
      errorEl.textContent = text || "";
      errorEl.hidden = !text;
      if (text) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    },
  };
}

// The complaints of a 422 (error.fields) put next to their fields; returns those that found none.
export function showFieldErrors(fields, byName) {
  const left = {};
  Object.values(byName).forEach((f) => f.setError(""));
  let first = null;
  for (const [name, problem] of Object.entries(fields || {})) {
    const target = byName[name];
    if (target) {
      target.setError(problem);
      if (!first) first = target.control;
    } else {
      left[name] = problem;
    }
  }
  if (first) first.focus();
  return left;
}

// A table whose cells are built by `columns` ([[heading, row => node], ...]); wrapped to scroll on small screens.
export function table(caption, columns, rows) {
  const head = h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", { scope: "col" }, title))));
  const body = h(
    "tbody",
    {},
    rows.map((row) => h("tr", {}, columns.map(([title, cell]) => h("td", { "data-label": title }, cell(row))))),
  );
  return h("div", { class: "table-wrap" }, h("table", {}, h("caption", { class: "visually-hidden" }, caption), head, body));
}

export function displayName(user) {
  if (!user) return "Unknown user";
  return user.fullName || user.email || user.externalId || (user.anonymous ? "Anonymous visitor" : user._id);
}

export function randomId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Pages of a list read with next_cursor: where the reader is, and the
// Previous / "Page n" / Next controls that move them and load again.
export class CursorPages {
  constructor(load) {
    this.load = load;
    this.restart();
  }

  restart() {
    this.visited = []; // the cursors of the pages before this one
    this.cursor = null; // this page's cursor (null: the first page)
  }

  get first() {
    return this.cursor === null && !this.visited.length;
  }

  controls(nextCursor) {
    const previous = h("button", { type: "button", disabled: !this.visited.length }, "Previous");
    const next = h("button", { type: "button", disabled: !nextCursor }, "Next");
    previous.addEventListener("click", () => {
      this.cursor = this.visited.pop() || null;
      this.load();
    });
    next.addEventListener("click", () => {
      this.visited.push(this.cursor);
      this.cursor = nextCursor;
      this.load();
    });
    return [previous, h("span", { class: "muted" }, `Page ${this.visited.length + 1}`), next];
  }
}
