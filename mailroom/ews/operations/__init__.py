"""One module per EWS operation; each registers itself with the dispatcher on import."""
