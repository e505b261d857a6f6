// The admin panel: signing in, choosing a project, and the project's sections.
// Routes live in the address fragment (#/projects/<pid>/users), so a reload or
// a shared link opens the same place. Every action is a call to the public /v1
// API with the staff session kept in sessionStorage under "chatgate:admin".

import {
  ApiError,
  api,
  clear,
  errorBox,
  errorText,
  field,
  h,
  loadSession,
  onUnauthenticated,
  saveSession,
  showFieldErrors,
  statusArea,
  when,
} from "./admin-core.js";
import { LiveEvents } from "./admin-live.js";
import { renderSettings } from "./admin-settings.js";
import { renderKeys } from "./admin-keys.js";
import { renderUsers, renderUser } from "./admin-users.js";
import { renderInbox, renderConversation } from "./admin-inbox.js";
import { renderAudit, renderTester, renderMembers } from "./admin-tools.js";

const SECTIONS = [
  ["settings", "Settings"],
  ["keys", "API keys"],
  ["users", "Users"],
  ["inbox", "Inbox"],
  ["audit", "Audit"],
  ["tester", "Token tester"],
  ["members", "Members"],
];

const main = document.getElementById("main");
const layout = document.getElementById("layout");
const account = document.getElementById("account");
const publicUrl = (document.body.getAttribute("data-public-url") || window.location.origin).replace(/\/+$/, "");

const state = {
  me: null, // the staff account signed in
  project: null, // the project open now (its API object)
  live: null, // LiveEvents of that project
  view: null, // {alive, cleanups}: what the current view set up
  notice: "", // a message for the sign-in form (e.g. the session ended)
};

// -- routing ----------------------------------------------------------------

function parseRoute() {
  const parts = window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "signup") return { name: "signup" };
  if (parts[0] === "signin") return { name: "signin" };
  if (parts[0] === "projects" && parts[1]) {
    const section = SECTIONS.some(([key]) => key === parts[2]) ? parts[2] : "settings";
    return { name: "project", pid: parts[1], section, arg: parts[3] || null };
  }
  return { name: "projects" };
}

export function go(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

function projectHash(pid, section, arg) {
  return `#/projects/${encodeURIComponent(pid)}/${section}${arg ? `/${encodeURIComponent(arg)}` : ""}`;
}

function startView() {
  if (state.view) {
    state.view.alive = false;
    state.view.cleanups.forEach((fn) => fn());
  }
  const view = { alive: true, cleanups: [] };
  view.onCleanup = (fn) => view.cleanups.push(fn);
  state.view = view;
  return view;
}

function setTitle(...parts) {
  document.title = [...parts.filter(Boolean), "Chatgate admin"].join(" · ");
}

function focusHeading() {
  const heading = main.querySelector(".section h2") || main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}

function removeNav() {
  const nav = document.getElementById("project-nav");
  if (nav) nav.remove();
}

function stopLive() {
  if (state.live) state.live.stop();
  state.live = null;
}

// -- session --------------------------------------------------------------------

// notice: what the sign-in form says; explicit: the operator signed out (else the session ended
// by itself, and signing in again goes back to where they were).
function signedOut(notice, explicit) {
  saveSession(null);
  state.me = null;
  state.project = null;
  state.notice = notice || "";
  stopLive();
  removeNav();
  account.hidden = true;
  const route = parseRoute();
  if (explicit || route.name === "projects") go("#/signin");
  else render(); // a project route: sign in, then carry on there
}

onUnauthenticated(() => {
  if (loadSession()) signedOut("Your session has ended. Sign in again.");
});

function showAccount() {
  account.hidden = false;
  const me = state.me || {};
  document.getElementById("who").textContent = me.email || "";
}

async function whoAmI() {
  const session = loadSession();
  if (!session) return null;
  try {
    const me = await api("GET", "/v1/staff/me");
    saveSession({ ...session, user: me });
    return me;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    return session.user || null; // the server could not say; the next call will tell
  }
}

document.getElementById("sign-out").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const session = loadSession();
  stopLive();
  // The server ends the session before the panel says so.
  let ended = true;
  if (session) {
    button.disabled = true;
    try {
      const res = await fetch("/v1/auth/logout", { method: "POST", headers: { Authorization: session.token } });
      ended = res.ok || res.status === 401;
    } catch (e) {
      ended = false;
    }
    button.disabled = false;
  }
  signedOut(ended ? "You are signed out." : "You are signed out here, but Chatgate could not be reached to end the session.", true);
});

document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

// -- sign in and sign up ---------------------------------------------------------------

function renderSignIn(view) {
  setTitle("Sign in");
  const email = field({ label: "Email", kind: "email", name: "email", attrs: { autocomplete: "username" }, required: true });
  const password = field({
    label: "Password",
    kind: "password",
    name: "password",
    attrs: { autocomplete: "current-password" },
    required: true,
  });
  const status = statusArea();
  if (state.notice) status.info(state.notice);
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card narrow", novalidate: true }, email.wrap, password.wrap, h("div", { class: "actions" }, button), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    status.info("Signing in…");
    try {
      const answer = await api("POST", "/v1/auth/signin", { email: email.control.value, password: password.control.value }, { auth: false });
      if (!view.alive) return;
      saveSession({ token: answer.token, user: answer.user });
      state.me = answer.user;
      state.notice = "";
      const route = parseRoute();
      if (route.name === "project") render();
      else go("#/projects");
    } catch (err) {
      if (!view.alive) return;
      const left = err.code === "validation_failed" ? showFieldErrors(err.fields, { email, password }) : null;
      status.error(left && Object.keys(left).length === 0 ? new ApiError(422, { message: "Check the fields marked above." }) : err);
      button.disabled = false;
    }
  });
  clear(main).append(
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Sign in with your Chatgate staff account to manage your projects."),
    form,
    h("p", {}, "First time here? ", h("a", { href: "#/signup" }, "Create a staff account"), "."),
  );
}

function renderSignUp(view) {
  setTitle("Create a staff account");
  const email = field({ label: "Email", kind: "email", name: "email", attrs: { autocomplete: "username" }, required: true });
  const password = field({
    label: "Password",
    kind: "password",
    name: "password",
    hint: "8 to 256 characters; very common passwords are refused.",
    attrs: { autocomplete: "new-password" },
    required: true,
  });
  const firstname = field({
    label: "First name",
    name: "firstname",
    hint: "Shown to your colleagues.",
    attrs: { autocomplete: "given-name" },
    required: true,
  });
  const lastname = field({ label: "Last name", name: "lastname", attrs: { autocomplete: "family-name" }, required: true });
  const status = statusArea();
  const button = h("button", { type: "submit", class: "primary" }, "Create account");
  const form = h(
    "form",
    { class: "card narrow", novalidate: true },
    email.wrap,
    password.wrap,
    firstname.wrap,
    lastname.wrap,
    h("div", { class: "actions" }, button),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    status.info("Creating your account…");
    const emailText = email.control.value.trim();
    const body = {
      email: emailText,
      password: password.control.value,
      firstname: firstname.control.value.trim(),
      lastname: lastname.control.value.trim(),
    };
    try {
      await api("POST", "/v1/auth/signup", body, { auth: false });
      const answer = await api("POST", "/v1/auth/signin", { email: body.email, password: body.password }, { auth: false });
      if (!view.alive) return;
      saveSession({ token: answer.token, user: answer.user });
      state.me = answer.user;
      state.notice = "";
      go("#/projects");
    } catch (err) {
      if (!view.alive) return;
      if (err.code === "validation_failed") {
        showFieldErrors(err.fields, { email, password, firstname, lastname });
      }
      status.error(err);
      button.disabled = false;
    }
  });
  clear(main).append(
    h("h1", {}, "Create a staff account"),
    h("p", { class: "muted" }, "Staff accounts manage projects and answer conversations. Anyone who can reach this server can create one; projects stay private to their members."),
    form,
    h("p", {}, "Already have an account? ", h("a", { href: "#/signin" }, "Sign in"), "."),
  );
}

// -- projects ----------------------------------------------------------------------------

async function renderProjects(view) {
  setTitle("Projects");
  stopLive();
  removeNav();
  state.project = null;
  const listArea = h("div", {}, h("p", { class: "muted" }, "Loading your projects…"));
  const name = field({
    label: "Project name",
    name: "name",
    hint: "1 to 200 characters, for instance the product or site the chat is for. You become its owner.",
    required: true,
  });
  const status = statusArea();
  const create = h("button", { type: "submit", class: "primary" }, "Create new project");
  const form = h("form", { class: "card", novalidate: true, id: "new-project" }, h("h2", {}, "Add a project"), name.wrap, h("div", { class: "actions" }, create), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!name.control.value.trim()) {
      name.control.focus();
      name.setError("Give the project a name.");
      return;
    }
    create.disabled = true;
    try {
      const project = await api("POST", "/v1/projects", { name: name.control.value.trim() });
      if (!view.alive) return;
      go(projectHash(project._id, "settings"));
    } catch (err) {
      if (!view.alive) return;
      if (err.code === "validation_failed") showFieldErrors(err.fields, { name });
      status.error(err);
      create.disabled = false;
    }
  });
  clear(main).append(h("h1", {}, "Projects"), listArea, form);
  try {
    const projects = await api("GET", "/v1/projects");
    if (!view.alive) return;
    clear(listArea);
    if (!projects.length) {
      listArea.append(h("p", {}, "You have no projects yet. Create the first one below: its chat is then served at this server's address."));
      return;
    }
    listArea.append(
      h("p", { class: "muted" }, "Choose a project to manage."),
      h(
        "ul",
        { class: "project-list" },
        projects.map((p) =>
          h(
            "li",
            {},
            h("a", { href: projectHash(p._id, "settings") }, p.name),
            h("span", { class: "muted" }, ` ${p.role} · created `, when(p.createdAt)),
          ),
        ),
      ),
    );
  } catch (err) {
    if (!view.alive) return;
    clear(listArea).append(errorBox(err));
  }
}

// -- one project ----------------------------------------------------------------------------

function renderNav(pid, section) {
  let nav = document.getElementById("project-nav");
  if (!nav || nav.getAttribute("data-project") !== pid) {
    removeNav();
    nav = h(
      "nav",
      { id: "project-nav", "aria-label": "Project sections", "data-project": pid },
      h("ul", {}, SECTIONS.map(([key, title]) => h("li", {}, h("a", { href: projectHash(pid, key), "data-section": key }, title)))),
    );
    layout.insertBefore(nav, main);
  }
  nav.querySelectorAll("a").forEach((a) => {
    if (a.getAttribute("data-section") === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
}

async function loadProject(pid) {
  if (state.project && state.project._id === pid) return state.project;
  state.project = await api("GET", `/v1/projects/${encodeURIComponent(pid)}`);
  return state.project;
}

function ensureLive(pid) {
  if (state.live && state.live.projectId === pid) return state.live;
  stopLive();
  state.live = new LiveEvents(
    pid,
    () => (loadSession() || {}).token,
    () => signedOut("Your session has ended. Sign in again."),
  );
  state.live.start();
  return state.live;
}

async function renderProject(view, route) {
  const { pid, section, arg } = route;
  let project;
  try {
    project = await loadProject(pid);
  } catch (err) {
    if (!view.alive) return;
    removeNav();
    stopLive();
    clear(main).append(
      h("h1", {}, "Project not available"),
      errorBox(err),
      h("p", {}, h("a", { href: "#/projects" }, "Back to your projects")),
    );
    setTitle("Project not available");
    return;
  }
  if (!view.alive) return;
  renderNav(pid, section);
  const live = ensureLive(pid);
  const title = SECTIONS.find(([key]) => key === section)[1];
  setTitle(title, project.name);
  const body = h("div", { class: "section" });
  clear(main).append(
    h("p", { class: "crumb" }, h("a", { href: "#/projects" }, "All projects")),
    h(
      "div",
      { class: "project-title" },
      h("h1", { id: "project-name" }, project.name),
      h("span", { class: "role" }, `your role: ${project.role}`),
    ),
    body,
  );
  const ctx = {
    view,
    body,
    pid,
    arg,
    project,
    live,
    me: state.me,
    publicUrl,
    go,
    link: (s, a) => projectHash(pid, s, a),
    // A section that changed the project (settings) hands the new version here.
    updateProject: (p) => {
      state.project = p;
      ctx.project = p;
      document.getElementById("project-name").textContent = p.name;
      setTitle(title, p.name);
    },
    refreshProject: async () => {
      state.project = null;
      const p = await loadProject(pid);
      ctx.project = p;
      return p;
    },
  };
  const renderers = {
    settings: renderSettings,
    keys: renderKeys,
    users: arg ? renderUser : renderUsers,
    inbox: arg ? renderConversation : renderInbox,
    audit: renderAudit,
    tester: renderTester,
    members: renderMembers,
  };
  await renderers[section](ctx);
}

// -- rendering ---------------------------------------------------------------------------------

let lastRoute = "";

async function render() {
  const view = startView();
  const route = parseRoute();
  const routeKey = window.location.hash;
  const moved = routeKey !== lastRoute;
  lastRoute = routeKey;
  const session = loadSession();
  try {
    if (!session) {
      account.hidden = true;
      removeNav();
      stopLive();
      if (route.name === "signup") renderSignUp(view);
      else renderSignIn(view);
    } else {
      if (!state.me) {
        state.me = await whoAmI();
        if (!view.alive) return;
        if (!state.me) {
          signedOut("Your session has ended. Sign in again.");
          return;
        }
      }
      showAccount();
      if (route.name === "signin" || route.name === "signup") {
        go("#/projects"); // already signed in
        return;
      }
      if (route.name === "project") await renderProject(view, route);
      else await renderProjects(view);
    }
  } catch (err) {
    if (!view.alive) return;
    clear(main).append(h("h1", {}, "Something went wrong"), errorBox(err), h("p", {}, h("a", { href: "#/projects" }, "Back to your projects")));
  }
  if (view.alive && moved) focusHeading();
}

window.addEventListener("hashchange", () => {
  render();
});

window.addEventListener("unhandledrejection", (event) => {
  // A refused call the section did not expect: say so instead of failing silently.
  if (event.reason instanceof ApiError) {
    const alert = h("div", { class: "status bad", role: "alert" }, errorText(event.reason));
    main.prepend(alert);
  }
});

render();
