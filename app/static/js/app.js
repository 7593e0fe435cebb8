// The chat app: boots the state, routes by location.hash, and lays out tabs and panes.
import { batched, h, icon, sheet } from "./dom.js";
import { clearDrafts } from "./drafts.js";
import { onLocale, t, translatePage } from "./i18n.js";
import { emit, on, state, totalUnread } from "./store.js";
import { startNotify } from "./notify.js";
import { mountConnectionBanner, registerWorker, resyncPush } from "./pwa.js";
import { start } from "./sync.js";
import { chatView } from "./views/chat.js";
import { mountChatList } from "./views/chats.js";
import { mountContacts, pendingIncoming, requestsView, searchView, userView } from "./views/contacts.js";
import { groupView, newGroupView } from "./views/groups.js";
import { applyTheme, devicesView, mountMe, profileView, settingsView } from "./views/me.js";
import { notificationsView } from "./views/notifysettings.js";
import { myDataView } from "./views/mydata.js";
import { chatSearchView } from "./views/search.js";

const shell = document.getElementById("shell");
const panel = document.getElementById("panel");
const main = document.getElementById("main");
const sideTitle = document.getElementById("side-title");
let tab = null;
let unmountPanel = null;
let detail = null;
let openChatId = null;

const DETAILS = [
  // #/chat/<id>/<seq> opens the chat at that message (a search hit).
  [/^#\/chat\/(\d+)(?:\/(\d+))?$/, "chats", (id, seq) => chatView(id, { seq })],
  [/^#\/chat\/(\d+)\/search$/, "chats", (id) => chatSearchView(id)],
  [/^#\/group\/(\d+)$/, "chats", (id) => groupView(id)],
  [/^#\/user\/(\d+)$/, "contacts", (id) => userView(id)],
  [/^#\/search$/, "contacts", () => searchView()],
  [/^#\/requests$/, "contacts", () => requestsView()],
  [/^#\/new-group$/, "contacts", () => newGroupView()],
  [/^#\/profile$/, "me", () => profileView()],
  [/^#\/devices$/, "me", () => devicesView()],
  [/^#\/settings$/, "me", () => settingsView()],
  [/^#\/notifications$/, "me", () => notificationsView()],
  [/^#\/data$/, "me", () => myDataView()],
];

function showTab(name) {
  if (name === tab) return;
  tab = name;
  unmountPanel?.();
  const mount = { chats: mountChatList, contacts: mountContacts, me: mountMe }[name];
  unmountPanel = mount(panel, () => openChatId);
  sideTitle.dataset.i18n = `tab.${name}`;
  sideTitle.textContent = t(`tab.${name}`);
  for (const link of document.querySelectorAll("#tabs a")) {
    link.classList.toggle("on", link.dataset.tab === name);
    if (link.dataset.tab === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function placeholder() {
  return { el: h("div", { class: "placeholder" }, h("div", { class: "placeholder-mark" }, icon("chats", "icon huge")), h("p", { class: "muted", text: t("pick.chat") })) };
}

function route() {
  const hash = window.location.hash || "#/chats";
  let view = null;
  let nextTab = ["#/chats", "#/contacts", "#/me"].includes(hash) ? hash.slice(2) : tab || "chats";
  openChatId = null;
  for (const [pattern, owner, make] of DETAILS) {
    const match = hash.match(pattern);
    if (match) {
      nextTab = owner;
      const id = match[1] ? Number(match[1]) : null;
      if (pattern === DETAILS[0][0]) openChatId = id;
      view = make(id, match[2] ? Number(match[2]) : null);
      break;
    }
  }
  showTab(nextTab);
  detail?.destroy?.();
  detail = view || placeholder();
  main.replaceChildren(detail.el);
  shell.classList.toggle("detail-open", !!view);
  badges();
  emit("route");
}

function badges() {
  const unread = totalUnread();
  const chats = document.getElementById("badge-chats");
  chats.hidden = unread === 0;
  chats.textContent = unread > 99 ? "99+" : String(unread);
  const requests = pendingIncoming();
  const contacts = document.getElementById("badge-contacts");
  contacts.hidden = requests === 0;
  contacts.textContent = String(requests);
  document.title = unread ? `(${unread}) Parley` : "Parley";
}

document.getElementById("add-menu").addEventListener("click", () =>
  sheet(t("chat.more"), (body, close) => {
    const item = (href, iconName, label) => h("a", { class: "menu-item", href, onclick: () => close() }, icon(iconName), h("span", { text: label }));
    body.append(h("div", { class: "menu" }, item("#/new-group", "group", t("group.create")), item("#/search", "addUser", t("contacts.add"))));
  }),
);

async function boot() {
  applyTheme(localStorage.getItem("parley.theme"));
  translatePage();
  const me = JSON.parse(document.getElementById("boot").textContent);
  // Drafts another account left in this browser (signed out elsewhere than the Me tab) go.
  clearDrafts(me.id);
  const redrawBadges = batched(badges);
  on("conversations", redrawBadges);
  on("requests", redrawBadges);
  mountConnectionBanner(document.getElementById("conn"));
  window.addEventListener("load", () => registerWorker().then(() => resyncPush()), { once: true });
  onLocale(() => {
    const current = tab;
    tab = null;
    showTab(current);
    route();
  });
  window.addEventListener("hashchange", route);
  await start(me);
  startNotify();
  route();
  document.body.classList.add("ready");
}

boot();
