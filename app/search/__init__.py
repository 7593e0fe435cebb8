"""Search: messages a user may see (a trigram index per database) and their contacts by name."""
