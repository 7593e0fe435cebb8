// Photos and videos this device sent, shown from the picked file (an object URL) while the send is
// pending and until the server's copy is there: a pending body has no URL yet, and none is ever
// guessed from its upload id. A photo switches to the server's thumbnail once that is decoded (the
// new src is then in the image cache: no blank frame) and the object URL is revoked. A video keeps
// the local file while its chat is open (switching a video's source reloads it and stops playback);
// the object URL is revoked when the chat closes, and the server's copy plays the next time.

const held = new Map(); // client_msg_id -> {url, conversationId, shown: Set of <img>, swapping}

/** Show `file` in the bubble of the send `clientMsgId` (in `conversationId`) until the server's copy is there. */
export function holdLocalMedia(clientMsgId, file, conversationId) {
  if (!clientMsgId || !(file instanceof Blob)) return;
  held.set(clientMsgId, { url: URL.createObjectURL(file), conversationId, shown: new Set(), swapping: false });
}

/** The object URL to show for this message instead of the server's, or null. */
export function localUrl(message) {
  return (message.client_msg_id && held.get(message.client_msg_id)?.url) || null;
}

function release(clientMsgId) {
  const local = held.get(clientMsgId);
  if (!local) return;
  held.delete(clientMsgId);
  URL.revokeObjectURL(local.url);
}

/**
 * `img` shows the local file of `message`; once `serverSrc` (the stored message's thumbnail) is
 * decoded, every such photo switches to it and the object URL is revoked.
 */
export function followLocalPhoto(message, img, serverSrc) {
  const local = held.get(message.client_msg_id);
  if (!local) return;
  local.shown.add(img);
  if (!serverSrc || local.swapping) return;
  local.swapping = true;
  const probe = new Image();
  probe.src = serverSrc;
  probe.decode().then(
    () => {
      for (const shown of local.shown) shown.src = serverSrc;
      local.shown.clear();
      release(message.client_msg_id);
    },
    () => {
      // The server's copy did not load: the local file stays on screen.
      local.swapping = false;
    },
  );
}

/** The chat closed: revoke its local files whose sends are stored (`pending(id)` is false). */
export function releaseLocalMedia(conversationId, pending) {
  for (const [id, local] of [...held]) {
    if (local.conversationId === conversationId && !pending(id)) release(id);
  }
}
