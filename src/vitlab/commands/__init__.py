"""Headless subcommands of the `vitlab` CLI, one module each; each exposes `add_parser(subparsers)`."""
