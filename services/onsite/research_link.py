"""The on-site service's questions to research, over gRPC with the service's own token."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from branch.research.v1 import note_pb2
from branch.research.v1 import research_service_pb2 as rapi
from branch.research.v1.research_service_pb2_grpc import ResearchServiceStub

from services.common.errors import InvalidArgument, Unavailable
from services.common.logs import get_logger

TIMEOUT = 5.0

log = get_logger("onsite", component="research_link")


class ResearchLink:
    def __init__(self, channel: Callable[[], grpc.aio.Channel]) -> None:
        self._channel = channel

    async def published_notes(
        self, ticker: str, page_token: str, page_size: int
    ) -> tuple[list[note_pb2.Note], str]:
        """One page of published, unexpired notes on ticker, newest first, with the next page's
        token ('' at the end). A ticker research rejects as malformed has no notes."""
        try:
            resp = await ResearchServiceStub(self._channel()).ListNotes(
                rapi.ListNotesRequest(
                    ticker=ticker, state=note_pb2.NOTE_STATE_PUBLISHED, include_expired=False,
                    page_size=page_size, page_token=page_token,
                ),
                timeout=TIMEOUT,
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                if page_token:
                    raise InvalidArgument({"page_token": "no longer valid; start again"}) from None
                log.warning("research refused a ticker of a form")
                return [], ""
            raise Unavailable(
                "the research service did not answer ({code}); relevant notes cannot be listed "
                "now, try again later", code=err.code().name
            ) from None
        return list(resp.notes), resp.next_page_token
