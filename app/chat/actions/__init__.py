"""Message actions: what members do to a message once it is sent (recall, edit, react, pin,
forward, delete for themselves). One module per action; `common` holds what they share.

Every action is a service call: it checks membership, role, window and blocks, writes, gives the
message (or conversation) a new stream position so sync carries the change to devices that were
away, commits, and only then emits. They sit above the chat services they use (access, stream,
send, conversations) and below routes and events (tests/test_layers.py)."""
