// Where a chat's history is scrolled, kept through every change. At the end ("stuck", within
// STICK_PX of it) the view follows what arrives: new rows, photos that finish loading, a taller
// composer. Scrolled up, the first message on screen is the anchor: its offset from the top of the
// viewport is recorded, and after any change (rows added or rebuilt, an older page above, media
// loading, the viewport resized) it is put back, before the change is painted (a ResizeObserver
// runs after layout, before paint). The browser's own scroll anchoring (`overflow-anchor`) is off
// on the list: it does nothing at the very top, where older pages arrive, and would fight this.

export const STICK_PX = 24;

/** A keeper for `scroller` (the scrolling box) and `list` (its rows, each with data-seq or data-cmid). */
export function scrollKeeper(scroller, list, { attached }) {
  let stick = true;
  let anchor = null;
  // Where the keeper last put scrollTop itself: a scroll event there is not the reader's.
  let placedTop = null;

  const fromBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;

  function toBottom() {
    scroller.scrollTop = scroller.scrollHeight;
    placedTop = scroller.scrollTop;
    stick = true;
  }

  /** The first message row on screen (a day line is no reference: it moves to its first message). */
  function firstVisible() {
    const top = scroller.getBoundingClientRect().top;
    for (const child of list.children) {
      if ((child.dataset.seq || child.dataset.cmid) && child.getBoundingClientRect().bottom > top) return child;
    }
    return null;
  }

  function remember() {
    const row = firstVisible();
    const top = scroller.getBoundingClientRect().top;
    anchor = row ? { row, seq: row.dataset.seq, cmid: row.dataset.cmid, offset: row.getBoundingClientRect().top - top, scrollTop: scroller.scrollTop } : null;
  }

  /** Put the anchor back where the reader saw it; found again by seq or client id when rebuilt. */
  function restore() {
    if (!anchor) return;
    let row = anchor.row;
    if (!row.isConnected) {
      const bySeq = anchor.seq && list.querySelector(`:scope > [data-seq="${CSS.escape(anchor.seq)}"]`);
      row = bySeq || (anchor.cmid && list.querySelector(`:scope > [data-cmid="${CSS.escape(anchor.cmid)}"]`)) || null;
    }
    if (!row) return;
    const delta = row.getBoundingClientRect().top - scroller.getBoundingClientRect().top - anchor.offset;
    if (Math.abs(delta) >= 0.5) {
      scroller.scrollTop += delta;
      placedTop = scroller.scrollTop;
    }
  }

  /** Something changed size: follow the end, or keep the anchor. */
  function settle() {
    if (stick && attached()) toBottom();
    else restore();
    remember();
  }

  const observer = new ResizeObserver(settle);

  return {
    fromBottom,
    /** The reader is at the end of the newest message. */
    get stuck() {
      return stick && attached();
    },
    /** Before rows change: the anchor as the reader sees it now (they may have scrolled since). */
    before() {
      if (!anchor || anchor.scrollTop !== scroller.scrollTop) remember();
    },
    /** After rows changed: to the end (`bottom`), or the anchor back in place. */
    after(bottom) {
      if (bottom) toBottom();
      else restore();
      remember();
    },
    /** The view scrolled on its own (to a message it jumped to): start from there. */
    placed() {
      placedTop = scroller.scrollTop;
      stick = attached() && fromBottom() <= STICK_PX;
      remember();
    },
    /** The list's scroll event: a scroll by the reader decides whether the view follows the end. */
    scrolled() {
      if (scroller.scrollTop === placedTop) return;
      placedTop = null;
      stick = attached() && fromBottom() <= STICK_PX;
      remember();
    },
    /** Watch these elements' sizes (the list, the viewport, what sits above or below the list). */
    observe(...elements) {
      for (const element of elements) observer.observe(element);
    },
    destroy() {
      observer.disconnect();
    },
  };
}
