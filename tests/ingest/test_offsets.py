"""Consumer lag: the one formula the reader and ``lakehouse status`` share."""

from __future__ import annotations

from ingest.offsets import lag_per_topic, per_topic, split_key


def test_lag_subtracts_positions_per_partition_and_sums_per_topic() -> None:
    ends = {
        "webhooks.stripe.charge:0": 6,
        "webhooks.stripe.charge:1": 0,
        "webhooks.stripe.charge:2": 4,
        "webhooks.stripe.refund:0": 4,
        "webhooks.dlq:0": 0,
    }
    positions = {"webhooks.stripe.charge:0": 3, "webhooks.stripe.charge:2": 4}
    assert lag_per_topic(ends, positions) == {
        "webhooks.stripe.charge": 3,
        "webhooks.stripe.refund": 4,
        "webhooks.dlq": 0,
    }


def test_a_position_past_the_end_is_no_lag_and_unknown_partitions_do_not_count() -> None:
    ends = {"webhooks.stripe.charge:0": 5}
    positions = {"webhooks.stripe.charge:0": 7, "webhooks.stripe.charge:9": 2}
    assert lag_per_topic(ends, positions) == {"webhooks.stripe.charge": 0}


def test_partition_keys_split_on_the_last_colon_and_counts_sum_per_topic() -> None:
    assert split_key("webhooks.stripe.charge:12") == ("webhooks.stripe.charge", 12)
    assert per_topic({"a.b:0": 2, "a.b:1": 3, "c:0": 1}) == {"a.b": 5, "c": 1}
