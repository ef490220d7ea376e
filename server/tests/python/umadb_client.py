"""Drives a running Gesta server with UmaDB's own Python client (`pip install
umadb`): every RPC, the error mapping, tracking info and a subscription.

    gesta-server /tmp/store --listen 127.0.0.1:50051 &
    python3 server/tests/python/umadb_client.py http://127.0.0.1:50051
"""

import sys
import uuid

from umadb import (
    AppendCondition,
    Client,
    Event,
    IntegrityError,
    Query,
    QueryItem,
    ServingStatus,
    TrackingInfo,
)

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:50051"
client = Client(url)
assert client.check_health() == ServingStatus.SERVING, client.check_health()
start = client.head() or 0

course = f"course:{uuid.uuid4()}"
registered = Event(
    "CourseRegistered",
    b'{"capacity": 30}',
    tags=[course],
    uuid=uuid.uuid4(),
    metadata={"correlation": "c-1"},
)
only_new = AppendCondition(Query([QueryItem(tags=[course])]))
position = client.append([registered], only_new)
assert position == start + 1, (position, start)

# The same append again: the condition fails, but the ids match the
# committed event, so the earlier position comes back.
assert client.append([registered], only_new) == position

# A different event under the same condition is an integrity error.
try:
    client.append([Event("CourseRegistered", b"{}", tags=[course])], only_new)
    raise AssertionError("the condition should have failed")
except IntegrityError:
    pass

# Reads: start is inclusive; the event comes back as given.
events, head = client.read(Query([QueryItem(tags=[course])])).collect_with_head()
assert [e.position for e in events] == [position], events
assert head == position
got = events[0].event
assert got.event_type == "CourseRegistered"
assert got.data == b'{"capacity": 30}'
assert got.tags == [course]
assert got.uuid == registered.uuid
assert got.metadata == {"correlation": "c-1"}, got.metadata
assert [e.position for e in client.read(start=position)] == [position]
assert [e.position for e in client.read(start=position, backwards=True, limit=1)] == [position]

# Tracking info for exactly-once consumers.
source = f"projection-{uuid.uuid4()}"
assert client.get_tracking_info(source) is None
client.append([Event("Projected", b"{}")], tracking_info=TrackingInfo(source, 7))
assert client.get_tracking_info(source) == 7
try:
    client.append([Event("Projected", b"{}")], tracking_info=TrackingInfo(source, 7))
    raise AssertionError("a repeated tracking position should be refused")
except IntegrityError:
    pass

# Tracking info comes back with the events appended with it.
tracked = client.append(
    [Event("Counted", b"1"), Event("Counted", b"2")],
    tracking_info=TrackingInfo(source, 8),
)
got = list(client.read(start=tracked - 1, limit=2))
assert [e.tracking_info for e in got] == [TrackingInfo(source, 8)] * 2, got
assert list(client.read(start=position, limit=1))[0].tracking_info is None

# A re-sent append after a lost answer, with the nil UUID (what a client
# sends when it has no UUID of its own): the earlier position. A different
# event with the nil UUID under the same condition is a conflict.
nil = uuid.UUID(int=0)
seat_tag = f"seat:{uuid.uuid4()}"
seat = Query([QueryItem(tags=[seat_tag])])
booked = Event("SeatBooked", b'{"by": "a"}', tags=[seat_tag], uuid=nil)
booked_at = client.append([booked], AppendCondition(seat))
assert client.append([booked], AppendCondition(seat)) == booked_at
try:
    client.append(
        [Event("SeatBooked", b'{"by": "b"}', tags=[seat_tag], uuid=nil)],
        AppendCondition(seat),
    )
    raise AssertionError("a different event with the nil UUID should conflict")
except IntegrityError:
    pass
assert [e.event.uuid for e in client.read(seat)] == [nil]
assert client.head() == booked_at

# An event too large to read back (gRPC clients receive at most 4 MiB) is
# refused at append, naming the limit; the store is unchanged.
try:
    client.append([Event("Big", b"x" * (5 << 20))])
    raise AssertionError("a 5 MiB event should be refused")
except Exception as e:  # the client's InvalidArgument
    assert "--max-event-bytes" in str(e), e
assert client.head() == booked_at
# The largest it accepts comes back through a read and a subscription.
largest = Event("Big", b"x" * (4 * 1024 * 1024 - 1100))
big_at = client.append([largest], tracking_info=TrackingInfo(source, 9))
assert len(list(client.read(start=big_at))[0].event.data) == len(largest.data)
big_sub = client.subscribe(after=big_at - 1)
assert next(iter(big_sub)).position == big_at
big_sub.cancel()

# Beyond Gesta's limits (UmaDB accepts these): refused with the reason.
for bad, reason in [
    (Event("E", b"", tags=[""]), "empty tag"),
    (Event("T" * 1025, b""), "1025 bytes, the limit is 1024"),
    (Event("E", b"", tags=[f"t:{i}" for i in range(256)]), "256 tags, the limit is 255"),
]:
    try:
        client.append([bad])
        raise AssertionError(f"{reason}: should be refused")
    except Exception as e:
        assert reason in str(e), e

# A subscription catches up from `after` (exclusive).
subscription = client.subscribe(Query([QueryItem(tags=[course])]), after=start)
first = next(iter(subscription))
assert first.position == position
subscription.cancel()

print("umadb client against gesta-server: ok")
