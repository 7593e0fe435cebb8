"""Webhooks: events delivered to a company's backend from a durable outbox, and the synchronous
`message.before_send` check."""
