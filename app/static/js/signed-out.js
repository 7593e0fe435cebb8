// The sign-in page: nobody is signed in on this browser any more (signed out from the account
// page, a device session revoked elsewhere, a ban), so no draft of the chats stays behind.
import { clearDrafts } from "./drafts.js";

clearDrafts();
