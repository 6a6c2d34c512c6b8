import pytest

from iaforge.core.workers import resolve_workers, run_in_workers, split_balanced


def _square_pid(x):
    import os

    return x * x, os.getpid()


def test_split_balanced_covers_every_index_once_and_balances():
    costs = [10, 1, 1, 1, 9, 2]
    groups = split_balanced(costs, 2)
    assert sorted(i for g in groups for i in g) == list(range(len(costs)))
    totals = sorted(sum(costs[i] for i in g) for g in groups)
    assert totals == [12, 12]
    assert all(g == sorted(g) for g in groups)
    assert split_balanced([3.0], 4) == [[0]]  # no empty groups


def test_resolve_workers():
    assert 1 <= resolve_workers("auto") <= 2
    assert resolve_workers(3) == 3
    with pytest.raises(ValueError, match="workers"):
        resolve_workers(0)


def test_run_in_workers_keeps_order_and_uses_other_processes():
    import os

    out = run_in_workers(_square_pid, [{"x": i} for i in range(4)], 2)
    assert [v for v, _ in out] == [0, 1, 4, 9]
    assert all(pid != os.getpid() for _, pid in out)
    inline = run_in_workers(_square_pid, [{"x": 5}], 2)  # one call: no process is started for it
    assert inline == [(25, os.getpid())]


def _boom(x):
    raise ValueError(f"bad {x}")


def test_a_worker_error_reaches_the_caller():
    with pytest.raises(ValueError, match="bad 1"):
        run_in_workers(_boom, [{"x": 1}, {"x": 2}], 2)
