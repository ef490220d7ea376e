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

# A subscription catches up from `after` (exclusive).
subscription = client.subscribe(Query([QueryItem(tags=[course])]), after=start)
first = next(iter(subscription))
assert first.position == position
subscription.cancel()

print("umadb client against gesta-server: ok")
