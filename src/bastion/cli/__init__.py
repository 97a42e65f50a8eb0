"""The ``bastion`` command line (typer + rich): an adapter, no business rules."""
