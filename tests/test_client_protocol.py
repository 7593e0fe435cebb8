"""The browser client speaks the whole protocol: every event docs/PROTOCOL.md says the server
sends has a handler in app/static/js, and the client sends only events the protocol lists."""

from __future__ import annotations

import re

from config import BASE_DIR

PROTOCOL = BASE_DIR / "docs/PROTOCOL.md"
CLIENT = BASE_DIR / "app/static/js"
# Socket.io's own events, not part of Parley's protocol.
RESERVED = {"connect", "disconnect", "connect_error"}


def table_events(heading: str) -> list[str]:
    """The first column of the table that follows the paragraph starting with `heading`."""
    lines = PROTOCOL.read_text().splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(heading))
    events = []
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            in_table = True
            match = re.match(r"\|\s*`([a-z_:]+)`\s*\|", line)
            if match:
                events.append(match.group(1))
        elif in_table and line.strip():
            break
    return events


def server_events() -> list[str]:
    return table_events("Events the server sends")


def client_events() -> list[str]:
    return table_events("Events you send carry an ack")


def client_sources() -> str:
    return "\n".join(path.read_text() for path in sorted(CLIENT.rglob("*.js")))


def handled_events() -> set[str]:
    return set(re.findall(r"""socket\.on\(\s*["']([^"']+)["']""", client_sources())) - RESERVED


def sent_events() -> set[str]:
    source = client_sources()
    return set(re.findall(r"""(?:request|socket\.emit|emitWithAck)\(\s*["']([^"']+)["']""", source))


def test_the_protocol_lists_the_events_it_describes():
    events = server_events()
    # The parser reads the whole table, however it grows.
    for name in ("message:new", "presence", "group:join_request", "message:recalled", "account:sanction"):
        assert name in events
    assert len(events) == len(set(events))
    assert set(client_events()) >= {"message:send", "conversation:read", "typing"}


def test_the_client_handles_every_event_the_server_sends():
    missing = [name for name in server_events() if name not in handled_events()]
    assert missing == [], f"docs/PROTOCOL.md lists events app/static/js does not handle: {missing}"


def test_the_client_listens_only_for_documented_events():
    unknown = handled_events() - set(server_events())
    assert unknown == set(), f"app/static/js listens for events docs/PROTOCOL.md does not list: {unknown}"


def test_the_client_sends_only_documented_events():
    sent = sent_events()
    assert sent, "the client's socket requests were not found"
    assert sent <= set(client_events()), sent - set(client_events())
