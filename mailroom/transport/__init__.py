"""Transport: moving messages to mailboxes. Local delivery lives here; SMTP and the durable
queue build on it."""
