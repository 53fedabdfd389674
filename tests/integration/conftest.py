"""Collection of the integration tests."""

from __future__ import annotations

import pytest

# The database drills break a copy four ways on two backends. What the backend does in
# a drill is read the object back, checksum checked while streaming: "good" and
# "flipped-byte" prove that on aws-s3. "truncated" and "not-a-dump" test what the
# drill's own stages make of a bad dump, the same whatever backend served it, so they
# run on localfs only (each aws-s3 case costs a database start: ~8 s).
_SAME_ON_EVERY_BACKEND = {"truncated", "not-a-dump"}
_DRILLS = (
    "test_mariadb_drill_passes_on_a_good_copy_and_names_the_stage_of_a_broken_one",
    "test_postgresql_drill_into_a_fresh_initdb_cluster",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        same = (
            params is not None
            and getattr(item, "originalname", "") in _DRILLS
            and params.params.get("store") == "aws-s3"
            and params.params.get("breakage") in _SAME_ON_EVERY_BACKEND
        )
        (dropped if same else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
