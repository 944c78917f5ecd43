"""One module per ``gatlens`` subcommand: ``add_parser(subparsers)`` and ``run(args) -> int``."""
