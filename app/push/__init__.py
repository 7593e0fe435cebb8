"""Web Push: browsers' push subscriptions (one per device session), and the pushes sent to the
devices of a conversation's members that are not connected when a message arrives."""
