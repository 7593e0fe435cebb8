// What floats above the page, in the order it opened: sheets, menus, the emoji and attach
// drawer, the search results. Esc closes the topmost one and gives focus back to what opened it:
// one key handler for all of them, so Esc never closes two things or the wrong one.
const stack = [];

function shown(el) {
  return !!el?.isConnected && !el.closest("[hidden]");
}

/** Drop layers removed or hidden some other way (a route change, a drawer closed by a tap). */
function prune() {
  for (let index = stack.length - 1; index >= 0; index -= 1) {
    if (!shown(stack[index].el)) stack.splice(index, 1);
  }
}

function restoreFocus(layer, always) {
  const active = document.activeElement;
  const lost = !active || active === document.body || !shown(active) || layer.el.contains(active);
  if ((always || lost) && shown(layer.opener)) layer.opener.focus({ preventScroll: true });
}

/**
 * An open layer: `el` its root (removed or hidden, it counts as closed), `close()` closes it,
 * `opener` gets the focus back (by default what has it now). A non-modal layer (`modal: false`,
 * the drawer, the search results) hears Esc only while the focus is inside `scope` or nowhere.
 * Returns done(), to call when the layer closes some other way (the focus goes back if it was lost).
 */
export function openLayer(el, { close, opener = document.activeElement, modal = true, scope = el } = {}) {
  for (let index = stack.length - 1; index >= 0; index -= 1) if (stack[index].el === el) stack.splice(index, 1);
  const layer = { el, close, opener: opener instanceof HTMLElement && opener !== document.body ? opener : null, modal, scope };
  stack.push(layer);
  return () => {
    const index = stack.indexOf(layer);
    if (index < 0) return;
    stack.splice(index, 1);
    restoreFocus(layer, false);
  };
}

document.addEventListener(
  "keydown",
  (event) => {
    if (event.key !== "Escape" || event.isComposing) return;
    prune();
    const active = document.activeElement;
    const nowhere = !active || active === document.body;
    for (let index = stack.length - 1; index >= 0; index -= 1) {
      const layer = stack[index];
      if (!layer.modal && !nowhere && !layer.scope.contains(active)) continue;
      event.preventDefault();
      event.stopPropagation();
      stack.splice(index, 1);
      // The focus goes back first, while the opener is still shown as the layer left it.
      restoreFocus(layer, true);
      layer.close();
      return;
    }
  },
  true,
);
