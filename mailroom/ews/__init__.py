"""Exchange Web Services: the SOAP codec and one module per operation."""
