"""The whole branchctl command tree builds: no command redefines a global option."""
from services.cli.branchctl import build_parser


def test_every_command_builds_with_the_global_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["insight", "download", "R1", "--format", "xlsx",
                              "--file", "out.xlsx", "-o", "json"])
    assert args.file == "out.xlsx" and args.output == "json"
