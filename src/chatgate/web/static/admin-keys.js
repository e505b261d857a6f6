// API keys: create one (shown once), list them, revoke with a confirmation.

import { api, confirmAction, copyButton, errorBox, field, h, hiddenText, showFieldErrors, statusArea, table, when } from "./admin-core.js";

const ROLES = [
  ["org.admin", "With org.user: read the project's signing secret (GET /v1/auth/customer/settings, as Kustomer's chat settings do)."],
  ["org.user", "Post messages into conversations as bot or system; with org.admin: read the signing secret."],
];

export function renderKeys(ctx) {
  const { body, view, pid } = ctx;
  const base = `/v1/projects/${encodeURIComponent(pid)}/apikeys`;
  const status = statusArea();
  const listStatus = statusArea();
  const listArea = h("div", {}, h("p", { class: "muted" }, "Loading the keys…"));
  const revealArea = h("div", {});

  const name = field({ label: "Name", name: "name", hint: "What the key is for, e.g. the service that will use it. 1 to 200 characters." });
  const roleFields = {};
  const rolesError = h("p", { class: "field-error", id: "roles-error", hidden: true });
  const roles = h(
    "fieldset",
    { class: "field", "aria-describedby": "roles-error" },
    h("legend", {}, "Roles"),
    ROLES.map(([role, hint]) => {
      roleFields[role] = field({ label: role, kind: "checkbox", name: `role-${role}`, value: true, hint });
      return roleFields[role].wrap;
    }),
    rolesError,
  );
  const expires = field({
    label: "Expires in days",
    kind: "number",
    name: "expires_in_days",
    hint: "Optional: 1 to 3650. Empty: the key never expires (until revoked).",
  });
  const byName = {
    name,
    expires_in_days: expires,
    roles: {
      control: roleFields["org.admin"].control,
      setError(text) {
        rolesError.textContent = text || "";
        rolesError.hidden = !text;
      },
    },
  };
  const create = h("button", { type: "submit", class: "primary" }, "Create key");
  const form = h(
    "form",
    { class: "card", novalidate: true },
    h("h3", {}, "New API key"),
    name.wrap,
    roles,
    expires.wrap,
    h("div", { class: "actions" }, create),
    status,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const days = expires.control.value.trim();
    const payload = {
      name: name.control.value.trim(),
      roles: ROLES.map(([role]) => role).filter((role) => roleFields[role].control.checked),
      expires_in_days: days === "" ? null : /^\d+$/.test(days) ? Number(days) : days,
    };
    create.disabled = true;
    try {
      const key = await api("POST", base, payload);
      if (!view.alive) return;
      showFieldErrors({}, byName);
      status.ok(`The key "${key.name}" was created.`);
      revealArea.replaceChildren(
        h(
          "div",
          { class: "reveal card", id: "new-key" },
          h("label", { for: "key-value" }, `API key "${key.name}"`),
          h("div", { class: "copy-row" }, h("input", { id: "key-value", type: "text", readonly: true, value: key.key, class: "mono", spellcheck: "false" }), copyButton(() => key.key)),
          h("p", { class: "warning", role: "alert" }, "Copy it now: it will not be shown again. Chatgate keeps only a hash of it."),
        ),
      );
      form.reset();
      Object.values(roleFields).forEach((f) => {
        f.control.checked = true;
      });
      document.getElementById("key-value").focus();
      await load();
    } catch (err) {
      if (!view.alive) return;
      if (err.code === "validation_failed") showFieldErrors(err.fields, byName);
      status.error(err);
    } finally {
      create.disabled = false;
    }
  });

  async function revoke(key) {
    const ok = await confirmAction({
      title: `Revoke the key "${key.name}"?`,
      text: "It stops working at once, everywhere it is used. This cannot be undone.",
      confirm: "Yes, revoke",
    });
    if (!ok) return;
    try {
      await api("DELETE", `${base}/${encodeURIComponent(key.id)}`);
      if (!view.alive) return;
      listStatus.ok(`The key "${key.name}" was revoked.`);
      await load();
    } catch (err) {
      if (!view.alive) return;
      listStatus.error(err);
    }
  }

  async function load() {
    try {
      const answer = await api("GET", base);
      if (!view.alive) return;
      const keys = answer.apikeys || [];
      if (!keys.length) {
        listArea.replaceChildren(h("p", {}, "No API keys yet."));
        return;
      }
      listArea.replaceChildren(
        table("API keys of this project", [
          ["Name", (k) => k.name],
          ["Roles", (k) => k.roles.join(", ")],
          ["Created", (k) => when(k.createdAt)],
          ["Last used", (k) => when(k.lastUsedAt)],
          ["Expires", (k) => (k.expiresAt ? when(k.expiresAt) : h("span", { class: "muted" }, "never"))],
          [
            "Status",
            (k) =>
              k.revoked
                ? h("span", { class: "badge" }, "Revoked")
                : h("button", { type: "button", class: "danger", onclick: () => revoke(k) }, "Revoke", hiddenText(` key ${k.name}`)),
          ],
        ], keys),
      );
    } catch (err) {
      if (!view.alive) return;
      listArea.replaceChildren(errorBox(err));
    }
  }

  body.replaceChildren(
    h(
      "section",
      {},
      h("h2", { id: "keys-heading" }, "API keys"),
      h("p", { class: "muted" }, "Keys let your servers call Chatgate without a staff account: to read the signing secret (Kustomer-style setups) or to post as a bot. Each key is shown once, when it is created."),
      form,
      revealArea,
      h("h3", {}, "Keys"),
      listStatus,
      listArea,
    ),
  );
  load();
}
