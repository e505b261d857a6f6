// Settings: every project setting as a labelled control, saved with a PATCH of
// only what changed; the signing secret (shown once) and snippets that mint a
// working sign-in code for this project.

import { api, append, confirmAction, copyButton, field, h, showFieldErrors, statusArea } from "./admin-core.js";

const METHODS = [
  ["anonymous", "Anonymous visitors", "Visitors may chat without signing in. They take no seat."],
  ["email", "Email and password", "End users may sign up and sign in with an email and a password of their own (their email is unverified)."],
  [
    "external_jwt",
    "External JWT sign-in",
    "Your backend vouches for its users with tokens signed with the project's secret: sign-in links and the widget (externalAuthCode), custom tokens and customer login.",
  ],
];

function lines(text) {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
}

// "" → null, "12" → 12; anything else is sent as typed, for the API to say what is wrong with it.
function wholeNumber(text, emptyValue) {
  const value = text.trim();
  if (value === "") return emptyValue;
  return /^-?\d+$/.test(value) ? Number(value) : value;
}

function sameList(a, b) {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}

export function renderSettings(ctx) {
  const { body, view } = ctx;
  const form = h("form", { class: "card", novalidate: true });
  const status = statusArea();
  const secretArea = h("section", { class: "card"});
  const snippetArea = h("section", { class: "card"});
  let fields = {};
  let secretShown = null; // the secret generated on this page, while it stays open

  function buildForm() {
    const p = ctx.project;
    const s = p.settings;
    const methods = s.auth_methods || {};
    fields = {
      name: field({ label: "Project name", name: "name", value: p.name, hint: "How the project is called in this panel. 1 to 200 characters." }),
      "settings.seat_limit": field({
        label: "Seat limit",
        kind: "number",
        name: "seat_limit",
        value: s.seat_limit,
        hint: "Most identified end users the project may have; empty for no limit. Anonymous visitors never take a seat, and lowering it keeps the users you have.",
      }),
      "settings.require_exp": field({
        label: "Require an expiry (exp) in tokens",
        kind: "checkbox",
        name: "require_exp",
        value: s.require_exp,
        hint: "Refuse customer tokens that carry no exp claim, in all three token sign-ins.",
      }),
      "settings.max_token_age_seconds": field({
        label: "Maximum token age (seconds)",
        kind: "number",
        name: "max_token_age_seconds",
        value: s.max_token_age_seconds,
        hint: "Customer login only: a token's iat may be at most this old. 1 to 604800 (a week).",
      }),
      "settings.leeway_seconds": field({
        label: "Clock leeway (seconds)",
        kind: "number",
        name: "leeway_seconds",
        value: s.leeway_seconds,
        hint: "How far your servers' clocks may be off: allowed on exp, nbf and iat. 0 to 600.",
      }),
      "settings.accepted_audiences": field({
        label: "Accepted audiences",
        kind: "textarea",
        name: "accepted_audiences",
        value: (s.accepted_audiences || []).join("\n"),
        hint: `Extra aud values a custom token may carry for this project, one per line (for instance https://tiledesk.com/projects/<old id> while migrating). ${ctx.publicUrl}/projects/${p._id} is always accepted.`,
      }),
      "settings.allowed_origins": field({
        label: "Allowed origins",
        kind: "textarea",
        name: "allowed_origins",
        value: (s.allowed_origins || []).join("\n"),
        hint: "Sites that may embed the chat and call this project's API from a browser, one per line, like https://shop.example (no path). Empty: any site may embed the chat, which a hostile site could abuse (clickjacking); list your sites before going live.",
      }),
    };
    const methodFields = {};
    const methodError = h("p", { class: "field-error", id: "auth-methods-error", hidden: true });
    const group = h(
      "fieldset",
      { class: "field", "aria-describedby": "auth-methods-error" },
      h("legend", {}, "Sign-in methods"),
      METHODS.map(([key, label, hint]) => {
        methodFields[key] = field({ label, kind: "checkbox", name: `auth_${key}`, value: methods[key] !== false, hint });
        return methodFields[key].wrap;
      }),
      methodError,
    );
    fields["settings.auth_methods"] = {
      control: methodFields.anonymous.control,
      methodFields,
      setError(text) {
        methodError.textContent = text || "";
        methodError.hidden = !text;
      },
    };
    const save = h("button", { type: "submit", class: "primary" }, "Save");
    form.replaceChildren(
      h("h2", {}, "Settings"),
      h("p", { class: "muted" }, "Only the settings you change are sent. Nothing changes if one of them is refused."),
      fields.name.wrap,
      fields["settings.seat_limit"].wrap,
      group,
      fields["settings.require_exp"].wrap,
      fields["settings.max_token_age_seconds"].wrap,
      fields["settings.leeway_seconds"].wrap,
      fields["settings.accepted_audiences"].wrap,
      fields["settings.allowed_origins"].wrap,
      h("div", { class: "actions" }, save),
      status,
    );
  }

  // What the form says now, compared with the project as loaded: only the differences.
  function changes() {
    const p = ctx.project;
    const s = p.settings;
    const out = {};
    const settings = {};
    const name = fields.name.control.value.trim();
    if (name !== p.name) out.name = name;
    const seat = wholeNumber(fields["settings.seat_limit"].control.value, null);
    if (seat !== s.seat_limit) settings.seat_limit = seat;
    const methods = {};
    for (const [key] of METHODS) {
      const on = fields["settings.auth_methods"].methodFields[key].control.checked;
      if (on !== (s.auth_methods[key] !== false)) methods[key] = on;
    }
    if (Object.keys(methods).length) settings.auth_methods = methods;
    const requireExp = fields["settings.require_exp"].control.checked;
    if (requireExp !== s.require_exp) settings.require_exp = requireExp;
    for (const key of ["max_token_age_seconds", "leeway_seconds"]) {
      const value = wholeNumber(fields[`settings.${key}`].control.value, "");
      if (value !== s[key]) settings[key] = value;
    }
    for (const key of ["accepted_audiences", "allowed_origins"]) {
      const value = lines(fields[`settings.${key}`].control.value);
      if (!sameList(value, s[key] || [])) settings[key] = value;
    }
    if (Object.keys(settings).length) out.settings = settings;
    return out;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const change = changes();
    Object.values(fields).forEach((f) => f.setError(""));
    if (!Object.keys(change).length) {
      status.info("Nothing to save: no setting was changed.");
      return;
    }
    const turnsJwtOn = change.settings && change.settings.auth_methods && change.settings.auth_methods.external_jwt === true;
    status.info("Saving…");
    try {
      const project = await api("PATCH", `/v1/projects/${encodeURIComponent(ctx.pid)}`, change);
      if (!view.alive) return;
      ctx.updateProject(project);
      buildForm();
      status.ok("Saved.");
      form.querySelector("button[type=submit]").focus();
      if (turnsJwtOn && !project.hasSigningSecret) {
        await generate(false);
      }
    } catch (err) {
      if (!view.alive) return;
      if (err.code === "validation_failed") {
        const left = showFieldErrors(err.fields, fields);
        const rest = Object.entries(left).map(([k, v]) => `${k}: ${v}`);
        status.show("bad", `Nothing was saved: ${rest.length ? rest.join("; ") : "fix the fields marked above"}.`);
      } else {
        status.error(err);
      }
    }
  });

  // -- signing secret ----------------------------------------------------------------

  const secretStatus = statusArea();

  function buildSecret() {
    const has = ctx.project.hasSigningSecret;
    const button = h("button", { type: "button" }, "Generate secret");
    button.addEventListener("click", () => generate(has));
    const revealed = secretShown
      ? h(
          "div",
          { class: "reveal", id: "new-secret" },
          h("label", { for: "secret-value" }, "Signing secret"),
          h("div", { class: "copy-row" }, h("input", { id: "secret-value", type: "text", readonly: true, value: secretShown, class: "mono", spellcheck: "false" }), copyButton(() => secretShown)),
          h("p", { class: "warning", role: "alert" }, "Copy it now and keep it on your server: it will not be shown again. The snippets below already contain it."),
        )
      : null;
    secretArea.replaceChildren();
    append(secretArea, [
      h("h2", { id: "secret-heading" }, "Signing secret"),
      h(
        "p",
        {},
        has
          ? "This project has a signing secret: your backend signs its tokens with it. It is never shown again; generate a new one if it was lost or leaked (the current one then stops working at once)."
          : "No signing secret yet: every token sign-in (links, widget, custom tokens, customer login) is refused until you generate one.",
      ),
      revealed,
      h("div", { class: "actions" }, button),
      secretStatus,
    ]);
  }

  async function generate(replacing) {
    if (replacing) {
      const ok = await confirmAction({
        title: "Generate a new signing secret?",
        text: "The current secret stops working at once: every token your backend signs with it is refused until you deploy the new one.",
        confirm: "Yes, generate a new secret",
      });
      if (!ok) return;
    }
    secretStatus.info("Generating…");
    try {
      const answer = await api("POST", `/v1/${encodeURIComponent(ctx.pid)}/keys/generate`);
      if (!view.alive) return;
      secretShown = answer.jwtSecret;
      ctx.updateProject({ ...ctx.project, hasSigningSecret: true });
      buildSecret();
      buildSnippets();
      secretStatus.ok("A new signing secret was generated.");
      const input = document.getElementById("secret-value");
      if (input) input.focus();
    } catch (err) {
      if (!view.alive) return;
      secretStatus.error(err);
    }
  }

  // -- snippets -----------------------------------------------------------------------

  function snippet(title, language, code, copyLabel) {
    return h(
      "div",
      { class: "snippet" },
      h("h3", {}, title),
      h("pre", { class: "code", "data-language": language }, h("code", {}, code)),
      copyButton(() => code, copyLabel),
    );
  }

  function buildSnippets() {
    const origin = ctx.publicUrl;
    const pid = ctx.project._id;
    const link = `${origin}/p/${pid}/?externalAuthCode=`;
    const nodeSecret = secretShown
      ? `const secret = ${JSON.stringify(secretShown)}; // the project's signing secret: keep it on your server`
      : "const secret = process.env.CHATGATE_SECRET; // the project's signing secret, from your server's configuration";
    const node = [
      "// npm install jsonwebtoken",
      'const jwt = require("jsonwebtoken");',
      "",
      nodeSecret,
      'const user = { id: "user-42", email: "ann@example.com", firstname: "Ann" }; // the user signed in to your site',
      "",
      "const code = jwt.sign(",
      "  { user: { id: user.id, email: user.email, firstname: user.firstname } },",
      "  secret,",
      '  { algorithm: "HS256", expiresIn: "10m" }',
      ");",
      `console.log(${JSON.stringify(link)} + encodeURIComponent(code));`,
    ].join("\n");
    const pySecret = secretShown
      ? `secret = ${JSON.stringify(secretShown)}  # the project's signing secret: keep it on your server`
      : 'secret = os.environ["CHATGATE_SECRET"]  # the project\'s signing secret, from your server\'s configuration';
    const python = [
      "# pip install PyJWT",
      ...(secretShown ? [] : ["import os"]),
      "import time",
      "",
      "import jwt",
      "",
      pySecret,
      'user = {"id": "user-42", "email": "ann@example.com", "firstname": "Ann"}  # the user signed in to your site',
      "",
      'code = jwt.encode({"user": user, "exp": int(time.time()) + 600}, secret, algorithm="HS256")',
      `print(f${JSON.stringify(`${link}{code}`)})`,
    ].join("\n");
    const widget = `<script defer src="${origin}/widget.js" data-project="${pid}" data-external-auth-code="CODE"></script>`;
    snippetArea.replaceChildren(
      h("h2", { id: "snippets-heading" }, "Sign your users in"),
      h(
        "p",
        {},
        "Your backend mints a short-lived code for the user signed in to your site (user.id is your id for them; other properties of user are kept as their metadata). ",
        "The link opens this project's chat signed in as that user, creating them on first sight. ",
        secretShown ? "These examples contain the new secret: run them as they are to try it." : "Set CHATGATE_SECRET to the project's signing secret, or generate a new one above to see it filled in.",
      ),
      snippet("Node.js (jsonwebtoken)", "javascript", node, "Node.js example"),
      snippet("Python (PyJWT)", "python", python, "Python example"),
      snippet("Widget on your site", "html", widget, "widget tag"),
      h("p", { class: "muted" }, "Replace CODE with a code minted as above, for each page view; leave data-external-auth-code out for a signed-out chat."),
      h(
        "p",
        { class: "muted" },
        "Custom tokens (Tiledesk style) name this project with the audience ",
        h("code", {}, `${origin}/projects/${pid}`),
        "; customer login (Kustomer style) posts to ",
        h("code", {}, `${origin}/v1/projects/${pid}/auth/customer/login`),
        ".",
      ),
    );
  }

  buildForm();
  buildSecret();
  buildSnippets();
  body.replaceChildren(form, secretArea, snippetArea);
}
