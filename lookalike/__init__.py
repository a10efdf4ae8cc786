"""The `lookalike` command line; the only module that sees every package."""
