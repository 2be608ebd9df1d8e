"""Request ids: random version-4 UUIDs drawn from a pool of ``os.urandom`` bytes, unique
also across a fork (the child must not hand out its parent's pooled ids)."""

from __future__ import annotations

import os
import uuid

from lockgate.serving.dataplane import new_request_id


def test_ids_are_unique_version_4_uuids() -> None:
    ids = [new_request_id() for _ in range(20_000)]  # several refills of the pool
    assert len(set(ids)) == len(ids)
    for rid in ids[::997]:
        u = uuid.UUID(hex=rid)
        assert u.hex == rid and u.version == 4 and u.variant == uuid.RFC_4122


def test_a_forked_child_draws_its_own_ids() -> None:
    new_request_id()  # the pool now holds ids the child must not repeat
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave without cleanup
        os.close(read)
        os.write(write, "".join(new_request_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        raw = fh.read().decode()
    os.waitpid(pid, 0)
    child = {raw[i : i + 32] for i in range(0, len(raw), 32)}
    parent = {new_request_id() for _ in range(300)}
    assert len(child) == 10 and not child & parent
