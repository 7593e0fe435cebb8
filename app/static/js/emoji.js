// A Unicode emoji picker: categories, and the ones used recently (kept in localStorage).
import { h } from "./dom.js";
import { t } from "./i18n.js";

const CATEGORIES = {
  smileys: "😀 😃 😄 😁 😆 😅 🤣 😂 🙂 🙃 😉 😊 😇 🥰 😍 🤩 😘 😗 😚 😙 😋 😛 😜 🤪 😝 🤑 🤗 🤭 🤫 🤔 🤐 🤨 😐 😑 😶 😏 😒 🙄 😬 😌 😔 😪 🤤 😴 😷 🤒 🤕 🤢 🤮 🥵 🥶 🥴 😵 🤯 🤠 🥳 😎 🤓 🧐 😕 😟 🙁 😮 😯 😲 😳 🥺 😦 😧 😨 😰 😥 😢 😭 😱 😖 😣 😞 😓 😩 😫 🥱 😤 😡 😠 🤬 😈 👿 💀 💩 🤡 👻 👽 🤖",
  people: "👋 🤚 🖐 ✋ 🖖 👌 🤏 ✌️ 🤞 🤟 🤘 🤙 👈 👉 👆 👇 ☝️ 👍 👎 ✊ 👊 🤛 🤜 👏 🙌 👐 🤲 🤝 🙏 💪 👀 👂 👃 🧠 👶 🧒 👦 👧 🧑 👨 👩 🧓 👴 👵 🙋 🙇 🤦 🤷 💁 🙆 🙅 🧑‍💻 🧑‍🍳 🧑‍🎓",
  animals: "🐶 🐱 🐭 🐹 🐰 🦊 🐻 🐼 🐨 🐯 🦁 🐮 🐷 🐸 🐵 🙈 🙉 🙊 🐔 🐧 🐦 🐤 🦆 🦅 🦉 🐺 🐗 🐴 🦄 🐝 🐛 🦋 🐌 🐞 🐢 🐍 🐙 🦑 🦀 🐠 🐟 🐬 🐳 🐋 🦈 🌸 🌹 🌻 🌼 🌷 🌱 🌲 🌳 🍀 🍁 🍂 🌈 ☀️ 🌙 ⭐ 🔥 💧 ❄️",
  food: "🍏 🍎 🍐 🍊 🍋 🍌 🍉 🍇 🍓 🍈 🍒 🍑 🥭 🍍 🥥 🥝 🍅 🥑 🥦 🌽 🥕 🍞 🥐 🧀 🍳 🥞 🥓 🍗 🍖 🌭 🍔 🍟 🍕 🥪 🌮 🍝 🍜 🍲 🍛 🍣 🍱 🥟 🍤 🍙 🍚 🍘 🍥 🥮 🍢 🍡 🍧 🍨 🍦 🥧 🧁 🍰 🎂 🍮 🍭 🍬 🍫 🍿 🍩 🍪 ☕ 🍵 🧋 🍺 🍻 🥂 🍷 🍹",
  activities: "⚽ 🏀 🏈 ⚾ 🎾 🏐 🏉 🎱 🏓 🏸 🥅 🏒 ⛳ 🏹 🎣 🥊 🥋 ⛸ 🎿 🏂 🏋️ 🤸 🚴 🏊 🧘 🎯 🎮 🎲 🧩 🎭 🎨 🎬 🎤 🎧 🎼 🎹 🥁 🎷 🎺 🎸 🎻 🏆 🥇 🥈 🥉 🎉 🎊 🎁 🎈 🧧 🏮",
  travel: "🚗 🚕 🚙 🚌 🏎 🚓 🚑 🚒 🚲 🛵 🏍 🚨 🚄 🚅 🚆 🚇 ✈️ 🛫 🛬 🚀 🛸 🚁 ⛵ 🚤 🚢 ⚓ 🗺 🗽 🗼 🏰 🏯 🎡 🎢 🏖 🏝 🏔 🗻 🏕 🏠 🏡 🏢 🏥 🏦 🏨 🏫 ⛪ 🕌 🌃 🌆 🌇 🌉",
  objects: "⌚ 📱 💻 ⌨️ 🖥 🖨 🖱 💾 💿 📷 📹 🎥 📞 ☎️ 📺 📻 ⏰ ⌛ 🔋 🔌 💡 🔦 🕯 💸 💵 💴 💰 💳 💎 🔧 🔨 🛠 🔑 🚪 🛋 🛏 🧸 🎀 ✉️ 📦 📝 📅 📌 📎 ✂️ 📚 📖 🔒 🔓",
  symbols: "❤️ 🧡 💛 💚 💙 💜 🖤 🤍 🤎 💔 ❣️ 💕 💞 💓 💗 💖 💘 💝 💯 ✅ ❌ ❓ ❗ ‼️ ⁉️ 💤 💢 💬 💭 🆗 🆒 🆕 🆘 ⭕ 🚫 ⚠️ ♻️ ✨ 🎵 ➕ ➖ ✔️ 🔴 🟠 🟡 🟢 🔵 🟣 ⚫ ⚪",
};
const RECENT_KEY = "parley.emoji.recent";

function recent() {
  try {
    return JSON.parse(localStorage.getItem(RECENT_KEY)) || [];
  } catch {
    return [];
  }
}

function remember(emoji) {
  const list = [emoji, ...recent().filter((item) => item !== emoji)].slice(0, 24);
  localStorage.setItem(RECENT_KEY, JSON.stringify(list));
}

/** The picker element; onPick(emoji) is called for each choice. */
export function emojiPicker(onPick) {
  const grid = h("div", { class: "emoji-grid" });
  const tabs = h("div", { class: "emoji-tabs", role: "tablist" });
  const names = ["recent", ...Object.keys(CATEGORIES)];
  const show = (name) => {
    const list = name === "recent" ? recent() : CATEGORIES[name].split(" ");
    grid.replaceChildren(
      ...(list.length ? list.map((emoji) => h("button", { type: "button", class: "emoji", text: emoji, "aria-label": emoji, onclick: () => { remember(emoji); onPick(emoji); } })) : [h("p", { class: "muted empty", text: t("emoji.none") })]),
    );
    for (const button of tabs.children) button.setAttribute("aria-selected", String(button.dataset.name === name));
  };
  for (const name of names) {
    const label = name === "recent" ? "🕘" : CATEGORIES[name].split(" ")[0];
    tabs.append(h("button", { type: "button", role: "tab", class: "emoji-tab", dataset: { name }, title: t(`emoji.${name}`), text: label, onclick: () => show(name) }));
  }
  show(recent().length ? "recent" : "smileys");
  return h("div", { class: "emoji-picker" }, tabs, grid);
}
