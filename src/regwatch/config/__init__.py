"""Account configuration: the account model, the halconfig file, secret sources, validation."""
