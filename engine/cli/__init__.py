"""`breast-engine` command line. Each subcommand lives in ``engine/cli/cmd_<name>.py``."""
