"""Pure pieces of the broker's live inbox and the compliance review: which connected brokers
an event concerns, the fan-out, the inbox digest, the revision diff, the enum words."""

from __future__ import annotations

import re
from dataclasses import dataclass

from branch.directory.v1 import client_pb2
from branch.research.v1 import note_pb2
from branch.vip.v1 import advisory_pb2, relay_pb2
from branch.vip.v1 import events_pb2 as ev
from branch.vip.v1 import vip_service_pb2 as vapi

from services.console import diff, enums, i18n
from services.console.feed import CLOSED, QUEUE, InboxFeed, Listener, owners_of
from services.console.pages.inbox import _action, _fingerprint


@dataclass
class Msg:
    subject: str
    data: bytes


def test_an_event_names_the_brokers_whose_inbox_it_touches() -> None:
    opened = ev.AdvisoryOpened(advisory_id="a1", broker_id="b1").SerializeToString()
    assert owners_of("branch.vip.advisory.opened", opened) == frozenset({"b1"})
    escalated = ev.AdvisoryEscalated(escalated_to_id="b2", previous_assignee_id="b1")
    assert owners_of("branch.vip.advisory.escalated",
                     escalated.SerializeToString()) == frozenset({"b1", "b2"})
    # relays planned for a note name nobody: every connected broker looks (with their token)
    planned = ev.RelaysPlanned(note_id="n1", targeted=3).SerializeToString()
    assert owners_of("branch.vip.relay.planned", planned) == frozenset()
    assert owners_of("branch.vip.roster.joined", b"") is None  # not about an inbox
    assert owners_of("branch.vip.advisory.opened", b"\xff\xff\xff") is None  # unreadable


async def test_the_feed_passes_a_notice_only_to_the_brokers_it_concerns() -> None:
    feed = InboxFeed(nc=None)
    mine, theirs = feed.listen("b1"), feed.listen("b2")
    await feed._on_msg(Msg("branch.vip.advisory.opened",
                           ev.AdvisoryOpened(broker_id="b1").SerializeToString()))
    assert mine.queue.qsize() == 1 and theirs.queue.empty()
    await feed._on_msg(Msg("branch.vip.relay.planned", ev.RelaysPlanned().SerializeToString()))
    assert mine.queue.qsize() == 2 and theirs.queue.qsize() == 1
    # the notice carries no data of the event beyond the broker ids it named
    assert mine.queue.get_nowait() == {"b1"}
    feed.drop(theirs)
    await feed._on_msg(Msg("branch.vip.relay.planned", ev.RelaysPlanned().SerializeToString()))
    assert theirs.queue.qsize() == 1 and feed.listeners == 1
    await feed.close()
    assert [mine.queue.get_nowait() for _ in range(mine.queue.qsize())][-1] is CLOSED


def test_a_slow_browser_keeps_the_latest_notices_only() -> None:
    listener = Listener("b1")
    for i in range(QUEUE + 5):
        listener.put(frozenset({f"b{i}"}))
    assert listener.queue.qsize() == QUEUE
    listener.put(CLOSED)
    items = [listener.queue.get_nowait() for _ in range(QUEUE)]
    # the oldest six went: the latest notices remain, in order, the end of the stream last
    assert items == [frozenset({f"b{i}"}) for i in range(6, QUEUE + 5)] + [CLOSED]


def test_the_inbox_digest_moves_with_what_the_broker_sees_and_names_nothing() -> None:
    def inbox(state: relay_pb2.RelayState.ValueType) -> vapi.GetInboxResponse:
        return vapi.GetInboxResponse(items=[vapi.InboxItem(
            next_action="relay", relay=relay_pb2.RelayTask(
                id="r1", state=state, client_display_name="张三丰"))])

    pending = _fingerprint(inbox(relay_pb2.RELAY_STATE_PENDING))
    assert pending == _fingerprint(inbox(relay_pb2.RELAY_STATE_PENDING))
    assert pending != _fingerprint(inbox(relay_pb2.RELAY_STATE_DELIVERED))
    assert pending != _fingerprint(vapi.GetInboxResponse())
    # sixteen hex digits: room for no id or name ("r1" or 张三丰 could never be in it, so
    # that is not what to check)
    assert re.fullmatch(r"[0-9a-f]{16}", pending), pending


def test_the_revision_diff_marks_changed_characters_and_added_and_removed_lines() -> None:
    table = diff.rows(["标题", "上证指数震荡。", "删掉的一行"],
                      ["标题", "上证指数震荡上行。", "新的一行", "再加一行"])
    assert [r.kind for r in table] == ["same", "changed", "changed", "added"]
    changed = table[1]
    assert changed.old.pieces == [(False, "上证指数震荡"), (False, "。")]
    assert [t for c, t in changed.new.pieces if c] == ["上行"]
    assert (table[3].old.number, table[3].new.number) == (None, 4)
    assert diff.changed(table) == 3
    removed = diff.rows(["a", "b"], ["a"])
    assert [(r.kind, r.old.number, r.new.number) for r in removed] == [
        ("same", 1, 1), ("removed", 2, None)]
    assert diff.rows([], ["only"])[0].kind == "added"


def test_enum_values_and_next_actions_in_words() -> None:
    a = advisory_pb2.Advisory(state=advisory_pb2.ADVISORY_STATE_AWAITING_RESEARCH)
    i18n.activate("en")
    try:
        assert enums.label_of(a, "state") == "awaiting research"
        assert enums.label_of(advisory_pb2.Advisory(), "state") == ""
        assert enums.label_of(note_pb2.Note(state=note_pb2.NOTE_STATE_RETURNED), "state") == (
            "returned")
        assert (1, "R1") in enums.choices(client_pb2.RiskLevel.DESCRIPTOR)
        assert _action("answer (research answer in)") == "answer (the research answer is in)"
        assert _action("something new") == "something new"
        i18n.activate("zh_CN")
        assert _action("relay") == "向客户传达"
    finally:
        i18n.activate("zh_CN")


async def test_a_closed_feed_ends_a_stream_that_connects_late() -> None:
    feed = InboxFeed(nc=None)
    await feed.close()
    assert feed.listen("b1").queue.get_nowait() is CLOSED


def test_a_stance_refused_by_research_is_shown_beside_the_row_it_came_from() -> None:
    from starlette.datastructures import FormData

    from services.console.pages.notes import _editor, _note_from, _stance_errors
    from services.console.views import Refusal

    form = FormData([("title", "周报"), ("ticker_1", "600519.SH"), ("stance_1", "5"),
                     ("ticker_2", ""), ("stance_2", ""), ("ticker_3", "bad ticker"),
                     ("stance_3", "4"), ("ticker_21", "000001.SZ"), ("stance_21", "6")])
    note, rows = _note_from(form, "n1")
    assert [s.ticker for s in note.stances] == ["600519.SH", "bad ticker", "000001.SZ"]
    assert rows == {"1": 0, "3": 1, "21": 2}  # no row is dropped, however many are sent
    refused = Refusal("invalid", {"note.stances[1].ticker": "not a ticker"})
    assert _stance_errors(refused, rows) == {3: "not a ticker"}
    shown = _editor(None, form)["stances"]
    assert [i for i, _ in shown] == [1, 2, 3, 21]  # the form again, rows numbered as sent
