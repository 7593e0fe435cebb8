// Who may speak where. A chat's composer is closed, with the reason and until when, while the
// server would refuse a send there: a site mute of my account (`muted`), "mute all" in a group I
// am a plain member of (`group_muted`), or my own mute in that group (`member_muted`). Kept true
// live (account:sanction, conversation:update, group:update), after a reload or a reconnect (the
// boot payload's and `/auth/me`'s `sanction`, each summary's `my_role` / `my_muted_until`) and when
// a mute runs out (a timer at its end; the server's periodic job tells the same a little later).
import { h, toast } from "../dom.js";
import { locale, t } from "../i18n.js";
import { emit, state } from "../store.js";

const MAX_TIMER_MS = 2 ** 31 - 1;
let accountTimer = null;

/** A site mute as `account:sanction` or the boot payload tell it ({kind, active, expires_at}). */
export function setAccountMute(sanction, { announce = false } = {}) {
  const ends = sanction?.expires_at ? Date.parse(sanction.expires_at) : null;
  const active = !!sanction?.active && (ends === null || ends > Date.now());
  state.sanction = active ? { kind: "mute", active: true, expires_at: sanction.expires_at || null } : null;
  clearTimeout(accountTimer);
  if (active && ends !== null && ends - Date.now() < MAX_TIMER_MS) {
    accountTimer = setTimeout(() => {
      state.sanction = null;
      emit("sanction");
    }, ends - Date.now());
  }
  emit("sanction");
  if (announce) toast(active ? t("sanction.muted") : t("sanction.unmuted"));
}

/**
 * Why I may not speak in this conversation now: {reason: "account" | "all" | "member", until}
 * (`until` an ISO time or null for no end), or null. Read-only chats (notices, dissolved groups,
 * groups I am out of) are the chat's own closed note, not this.
 */
export function speakBlock(summary, now = Date.now()) {
  if (!summary || summary.kind === "notice" || !summary.active || summary.group?.dissolved) return null;
  if (state.sanction?.active) {
    const until = state.sanction.expires_at;
    if (!until || Date.parse(until) > now) return { reason: "account", until: until || null };
  }
  if (summary.group) {
    if (summary.group.muted_all && summary.my_role === "member") return { reason: "all", until: null };
    const until = summary.my_muted_until;
    if (until && Date.parse(until) > now) return { reason: "member", until };
  }
  return null;
}

function untilText(iso) {
  const at = new Date(iso);
  const time = at.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" });
  if (at.toDateString() === new Date().toDateString()) return time;
  return `${at.toLocaleDateString(locale(), { month: "short", day: "numeric" })} ${time}`;
}

export function blockText(block) {
  if (block.reason === "all") return t("speak.all_muted");
  const key = block.reason === "account" ? "speak.account_muted" : "speak.member_muted";
  return block.until ? t(`${key}_until`, { time: untilText(block.until) }) : t(key);
}

/**
 * The closed state of one chat's composer: `el` (the reason, shown above the composer) and
 * `draw(closed)`, called whenever the chat's header is drawn (`closed`: the chat shows its own
 * read-only note and hides the composer). While blocked, the input and buttons are disabled (a
 * draft typed before stays in the input) and the drawer is closed; a timer redraws at the end.
 */
export function speakGate({ conversationId, input, controls = [], drawer = null }) {
  const el = h("div", { class: "closed-note speak-note muted", role: "status", hidden: true });
  let timer = null;
  let lastClosed = false;

  function draw(closed = lastClosed) {
    lastClosed = closed;
    clearTimeout(timer);
    const block = closed ? null : speakBlock(state.conversations.get(conversationId));
    el.hidden = !block;
    el.textContent = block ? blockText(block) : "";
    el.dataset.reason = block ? block.reason : "";
    for (const control of [input, ...controls]) control.disabled = !!block;
    if (block && drawer) drawer.hidden = true;
    const left = block?.until ? Date.parse(block.until) - Date.now() : NaN;
    if (left > 0 && left < MAX_TIMER_MS) timer = setTimeout(() => draw(), left + 50);
  }

  return { el, draw, destroy: () => clearTimeout(timer) };
}
