"""The `ar3d` subcommands. ``ar3d.cli`` parses the command line and imports only the module of
the command that runs, so ``ar3d --help`` stays free of torch."""
