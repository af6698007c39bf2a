"""branchctl's choice among search results (pure logic; the end-to-end cases are in
tests/flows/test_flow_people.py)."""

from __future__ import annotations

import pytest
from branch.directory.v1 import search_pb2 as spb

from services.cli.people import Ambiguous, pick


def _r(id_: str, exact: bool = False) -> spb.StaffSearchResult:
    return spb.StaffSearchResult(id=id_, employee_no=f"S{id_}", display_name="张伟",
                                 exact=exact, active=True)


def line(r: spb.StaffSearchResult) -> str:
    return f"{r.employee_no} {r.display_name}"


def test_one_exact_wins_over_prefix_matches() -> None:
    assert pick("staff member", "S0017", [_r("0017", True), _r("00170")], False, line) == "0017"


def test_the_only_match_is_taken() -> None:
    assert pick("staff member", "zw", [_r("1")], False, line) == "1"


def test_several_are_listed_and_none_is_said() -> None:
    with pytest.raises(Ambiguous) as err:
        pick("staff member", "张伟", [_r("1"), _r("2")], True, line)
    assert "S1 张伟" in str(err.value.code) and "S2 张伟" in str(err.value.code)
    assert "and more" in str(err.value.code)
    with pytest.raises(SystemExit) as gone:
        pick("client", "nobody", [], False, line)
    assert gone.value.code == "no client matches 'nobody'"
    # two exact namesakes: only they are listed
    with pytest.raises(Ambiguous) as err:
        pick("staff member", "张伟", [_r("1", True), _r("2", True), _r("3")], False, line)
    assert "S3" not in str(err.value.code)


@pytest.mark.parametrize("argv", [["directory", "reset-password", "S0003"],
                                  ["directory", "roles", "S0003", "broker"],
                                  ["directory", "deactivate", "S0003"]])
def test_admin_staff_commands_take_an_employee_number(argv: list[str]) -> None:
    """The admin's commands name staff like every other command (issue 13)."""
    from services.cli import branchctl
    from services.cli.people import PEOPLE, STAFF

    args = branchctl.build_parser().parse_args(argv)
    assert getattr(args, PEOPLE) == {"id": STAFF}
