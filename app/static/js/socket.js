// The one socket.io connection of this tab (library copied from npm into /static/vendor).
import { io } from "../vendor/socket.io.esm.min.js";
import { ApiError } from "./api.js";

export const socket = io({ autoConnect: false, withCredentials: true });

/** Emit with an ack; resolves with the ack or throws ApiError (code "network" on timeout). */
export async function request(event, payload, timeoutMs = 10000) {
  let ack;
  try {
    ack = await socket.timeout(timeoutMs).emitWithAck(event, payload);
  } catch {
    throw new ApiError(0, "network", "");
  }
  if (!ack?.ok) {
    const error = ack?.error || {};
    throw new ApiError(400, error.code || "bad_request", error.message || "", error.fields || {});
  }
  return ack;
}
