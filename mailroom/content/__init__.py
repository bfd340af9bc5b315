"""Content conversion: bodies, recipients and MIME, shared by EWS and transport."""
