from store.batches import BATCH_SIZE, id_batches


def test_ids_are_deduplicated_in_order_and_cut_at_the_batch_size() -> None:
    ids = [f"${n}" for n in range(BATCH_SIZE + 3)] + ["$0", "$1"]
    batches = list(id_batches(ids))
    assert [len(b) for b in batches] == [BATCH_SIZE, 3]
    assert [i for b in batches for i in b] == ids[: BATCH_SIZE + 3]


def test_no_ids_make_no_batch() -> None:
    assert list(id_batches([])) == []
