// Keyboard use of lists and menus.
//
// roving(container, selector): the items matching `selector` inside `container` form one Tab stop
// (roving tabindex): Tab enters the list at the item used last (or the current/first one), Up and
// Down (Home, End) move between items, Tab leaves the list. Items come and go as lists redraw; a
// MutationObserver keeps exactly one of them tabbable, and when the focused item is replaced by a
// new one for the same thing (same href or message), the focus moves to the new one.
//
// menuKeys(panel): Up/Down (Left/Right in a row of items, Home, End) move between a menu's items.

const NAV_KEYS = new Set(["ArrowUp", "ArrowDown", "Home", "End"]);

function visible(el) {
  return el.isConnected && el.getClientRects().length > 0;
}

/** What an item stands for, across redraws: its link, or its message. */
function keyOf(item) {
  return item.getAttribute("href") || (item.dataset.seq ? `s:${item.dataset.seq}` : item.dataset.cmid ? `c:${item.dataset.cmid}` : null);
}

/** Which item to move to from `index` for `key` (null: not a navigation key). */
function step(count, index, key) {
  if (!count) return null;
  if (key === "Home") return 0;
  if (key === "End") return count - 1;
  if (key === "ArrowUp" || key === "ArrowLeft") return index <= 0 ? 0 : index - 1;
  if (key === "ArrowDown" || key === "ArrowRight") return index < 0 ? 0 : Math.min(count - 1, index + 1);
  return null;
}

/**
 * Make the `selector` items of `container` one Tab stop moved by the arrow keys. `initial(items)`
 * picks the item that takes the Tab stop until the user moves to another one (default: `.current`'s,
 * else the first, and only while none has the stop).
 * `onKey(event, item)` sees other keys on an item first. Returns stop().
 */
export function roving(container, selector, { initial = null, onKey = null } = {}) {
  let active = null;
  // Until the user picks another item than `initial`'s (arrow keys, a click), the Tab stop
  // follows `initial` (the newest message as messages arrive).
  let picked = false;
  // The item that had the focus, while the focus stays in the list (a redraw that removes it
  // moves the focus to body: it is given back to the item, or to the one that replaced it).
  let focused = null;
  const items = () => [...container.querySelectorAll(selector)].filter(visible);

  function settle(records = []) {
    const all = [...container.querySelectorAll(selector)];
    if (!all.length) return;
    if (active && !active.isConnected) {
      const key = keyOf(active);
      active = (key && all.find((item) => keyOf(item) === key)) || null;
    }
    if (!active || !all.includes(active) || (!picked && initial)) {
      const shown = all.filter(visible);
      active = (initial && initial(shown.length ? shown : all)) || container.querySelector(`.current ${selector}, .current${selector}`) || shown[0] || all[0];
    }
    for (const item of all) {
      const wanted = item === active ? "0" : "-1";
      if (item.getAttribute("tabindex") !== wanted) item.setAttribute("tabindex", wanted);
    }
    const nowhere = !document.activeElement || document.activeElement === document.body;
    const removed = focused && records.some((record) => [...record.removedNodes].some((node) => node === focused || node.contains?.(focused)));
    if (nowhere && removed) {
      const key = keyOf(focused);
      const again = focused.isConnected ? focused : key && all.find((item) => keyOf(item) === key);
      if (again) {
        active = again;
        settle();
        again.focus({ preventScroll: true });
      }
    }
  }

  function onKeydown(event) {
    const item = event.target.closest?.(selector);
    if (!item || !container.contains(item)) return;
    if (onKey && onKey(event, item)) return;
    if (!NAV_KEYS.has(event.key) || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    if (event.target !== item) return; // keys inside an item (a button in a message) stay theirs
    const list = items();
    const next = step(list.length, list.indexOf(item), event.key);
    if (next === null) return;
    event.preventDefault();
    picked = true;
    active = list[next];
    settle();
    active.focus();
    active.scrollIntoView?.({ block: "nearest" });
  }

  function onFocusin(event) {
    const item = event.target.closest?.(selector);
    focused = item && container.contains(item) ? item : null;
    if (focused && item !== active) {
      picked = true;
      active = item;
      settle();
    }
  }

  function onFocusout(event) {
    // Focus moved elsewhere on purpose (Tab, a click on another control): forget the item.
    if (event.relatedTarget && !container.contains(event.relatedTarget)) focused = null;
    // Focus dropped to nothing while the item stays (a click on a blank area): forget it too.
    else if (!event.relatedTarget) {
      const item = focused;
      setTimeout(() => {
        if (focused === item && item?.isConnected && document.activeElement !== item) focused = null;
      });
    }
  }

  const observer = new MutationObserver((records) => settle(records));
  observer.observe(container, { childList: true, subtree: true });
  container.addEventListener("keydown", onKeydown);
  container.addEventListener("focusin", onFocusin);
  container.addEventListener("focusout", onFocusout);
  settle();
  return () => {
    observer.disconnect();
    container.removeEventListener("keydown", onKeydown);
    container.removeEventListener("focusin", onFocusin);
    container.removeEventListener("focusout", onFocusout);
  };
}

/**
 * Arrow keys, Home and End between the enabled, visible menu items of `panel`. A row of items (a
 * `role="group"`, the quick reactions) is one step for Up and Down; Left and Right move along it.
 */
export function menuKeys(panel, selector = '[role="menuitem"], [role="menuitemcheckbox"], [role="menuitemradio"]') {
  panel.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    const horizontal = event.key === "ArrowLeft" || event.key === "ArrowRight";
    if (!NAV_KEYS.has(event.key) && !horizontal) return;
    const current = event.target.closest?.(selector);
    if (!current || !panel.contains(current)) return;
    const items = [...panel.querySelectorAll(selector)].filter((el) => !el.disabled && visible(el));
    const rowOf = (el) => el.closest('[role="group"]');
    const row = rowOf(current);
    let target = null;
    if (horizontal) {
      if (!row) return;
      const along = items.filter((el) => row.contains(el));
      target = along[step(along.length, along.indexOf(current), event.key)];
    } else if (event.key === "Home" || event.key === "End") {
      target = event.key === "Home" ? items[0] : items[items.length - 1];
    } else {
      const index = items.indexOf(current);
      const down = event.key === "ArrowDown";
      const rest = down ? items.slice(index + 1) : items.slice(0, index).reverse();
      target = rest.find((el) => !row || rowOf(el) !== row) || null;
      // Up into a row lands on its first item.
      if (target && !down && rowOf(target)) target = items.find((el) => rowOf(el) === rowOf(target));
    }
    event.preventDefault();
    target?.focus();
  });
}

/** Whether a keydown asks for an item's context menu: the Menu key or Shift+F10. */
export function isMenuKey(event) {
  return event.key === "ContextMenu" || (event.key === "F10" && event.shiftKey);
}
