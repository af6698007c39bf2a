"""Every staff member's standing (active, roles, when it last changed), kept by the directory
in a JetStream key-value bucket and watched by every replica of every service.

Why a KV bucket rather than each service consuming events into its own table: a durable
consumer shared by a service's replicas hands each event to ONE replica, so the others
would not learn of a deactivation until they polled a table; a KV watch pushes every change
to every replica within milliseconds, and the bucket is JetStream storage (file, replicated
like the BRANCH stream), so a restarted replica reads the whole book again before it serves.
The directory writes the entry right after its commit and again from its own durable
consumer of branch.directory.staff.deactivated / roles_changed (retried until it lands).
Access tokens last minutes, which bounds the window if NATS itself is down.

Keys: "staff.<staff id>" -> JSON {"active": bool, "roles": [...], "changed": epoch seconds};
"keys" -> the time the directory's signing keys last changed (services fetch them again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from services.common.auth import Standing
from services.common.logs import get_logger
from services.common.nats_link import NatsLink

BUCKET = "branch_identity"
KEYS_CHANGED = "keys"


def _staff_key(staff_id: str) -> str:
    return f"staff.{staff_id}"


async def bucket(link: NatsLink) -> KeyValue:
    js = link.jetstream()
    try:
        return await js.key_value(BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(
            bucket=BUCKET, history=1, storage=StorageType.FILE,
            replicas=link.stream_replicas,
        ))


async def publish_standing(
    link: NatsLink, staff_id: str, *, active: bool, roles: Iterable[str], changed: datetime
) -> None:
    """Write a staff member's standing. `changed` never moves back (a late or replayed event
    must not shorten the window of tokens that lose removed roles)."""
    kv = await bucket(link)
    # never earlier than the wall clock either: a later stamp only makes more tokens lose
    # the removed roles, never fewer (tokens may be stamped by another clock)
    stamp = max(changed.timestamp(), time.time())
    try:
        old = json.loads((await kv.get(_staff_key(staff_id))).value or b"{}")
        stamp = max(stamp, float(old.get("changed", 0)))
    except (KeyNotFoundError, ValueError, TypeError):
        pass
    value = {"active": active, "roles": sorted(roles), "changed": stamp}
    await kv.put(_staff_key(staff_id), json.dumps(value).encode())


async def known_staff(link: NatsLink) -> set[str]:
    """Staff ids that have an entry in the bucket."""
    kv = await bucket(link)
    try:
        keys = await kv.keys()
    except NoKeysError:
        return set()
    return {k.removeprefix("staff.") for k in keys if k.startswith("staff.")}


async def publish_keys_changed(link: NatsLink, when: datetime) -> None:
    kv = await bucket(link)
    await kv.put(KEYS_CHANGED, str(when.timestamp()).encode())


class StandingBook:
    """The watched bucket, in memory. start() returns once every entry is loaded."""

    def __init__(self, link: NatsLink, on_keys_changed: Callable[[], None] | None = None) -> None:
        self._link = link
        self._entries: dict[str, Standing] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.on_keys_changed = on_keys_changed
        self.log = get_logger(link.service, component="standing")

    def get(self, staff_id: str) -> Standing | None:
        return self._entries.get(staff_id)

    async def start(self) -> None:
        watcher = await self._watch_loaded()
        self._task = asyncio.create_task(self._run(watcher), name=f"{self._link.service}-standing")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _watch_loaded(self) -> KeyValue.KeyWatcher:
        kv = await bucket(self._link)
        watcher = await kv.watchall()
        while True:
            entry = await watcher.updates(timeout=10)
            if entry is None:
                return watcher
            self._apply(entry)

    def _apply(self, entry: KeyValue.Entry) -> None:
        key = entry.key
        if key == KEYS_CHANGED:
            if self.on_keys_changed is not None:
                self.on_keys_changed()
            return
        if not key.startswith("staff.") or not entry.value:
            return
        try:
            doc = json.loads(entry.value)
            standing = Standing(active=bool(doc["active"]), roles=frozenset(doc["roles"]),
                                changed=float(doc["changed"]))
        except (ValueError, KeyError, TypeError):
            self.log.error("malformed standing entry", key=key)
            return
        self._entries[key.removeprefix("staff.")] = standing

    def _reconnects(self) -> int:
        nc = self._link.nc
        return int(nc.stats.get("reconnects", 0)) if nc is not None else 0

    async def _run(self, watcher: KeyValue.KeyWatcher) -> None:
        """Apply changes as they come; after a NATS reconnect, watch afresh (the replay of
        every entry covers anything missed while disconnected)."""
        seen = self._reconnects()
        while not self._stop.is_set():
            try:
                try:
                    entry = await watcher.updates(timeout=2)
                    if entry is not None:
                        self._apply(entry)
                except Exception as exc:  # a timeout, or the subscription went away
                    if type(exc).__name__ != "TimeoutError":
                        raise
                if self._reconnects() != seen:
                    seen = self._reconnects()
                    with contextlib.suppress(Exception):
                        await watcher.stop()
                    watcher = await self._watch_loaded()
                    self.log.info("standing book reloaded after reconnect")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.warning("standing watch failed; retrying", error=type(exc).__name__)
                await asyncio.sleep(1)
                with contextlib.suppress(Exception):
                    watcher = await self._watch_loaded()
        with contextlib.suppress(Exception):
            await watcher.stop()
