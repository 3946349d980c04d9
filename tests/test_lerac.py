import pytest
import torch
from torch import nn

from trainers.lerac import LeRaCScheduler, depth_param_groups


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)
    )


def _trajectory(sched: LeRaCScheduler, epochs: int) -> list[list[float]]:
    out = [sched.lrs()]
    for _ in range(epochs):
        sched.step_epoch()
        out.append(sched.lrs())
    return out


def test_groups_follow_depth_with_floor_and_classifier():
    groups = depth_param_groups(_mlp(), base_lr=0.1, min_lr=5e-3, classifier_factor=1e-3)
    assert [g["name"] for g in groups] == ["0", "2", "4", "6"]
    assert [g["depth"] for g in groups] == [0, 1, 2, 3]
    assert [len(g["params"]) for g in groups] == [2, 2, 2, 2]
    # 0.1 * 10^-2 = 1e-3 is floored at 5e-3; the classifier is not floored.
    assert [g["lr"] for g in groups] == pytest.approx([0.1, 0.01, 5e-3, 1e-4], rel=1e-12)
    assert groups[-1]["lr"] < min(g["lr"] for g in groups[:-1])


def test_lr_trajectory_matches_rule():
    opt = torch.optim.SGD(depth_param_groups(_mlp(), 0.1, min_lr=5e-3), lr=0.1, momentum=0.9)
    sched = LeRaCScheduler(opt, base_lr=0.1)
    expected = [
        [0.1, 0.01, 5e-3, 1e-4],
        [0.1, 0.1, 0.05, 1e-3],
        [0.1, 0.1, 0.1, 1e-2],  # 0.05 * 10 is capped at eta0
        [0.1, 0.1, 0.1, 0.1],
        [0.1, 0.1, 0.1, 0.1],
        [0.1, 0.1, 0.1, 0.1],
    ]
    got = _trajectory(sched, 5)
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, rel=1e-12)
    # Arrival is exact, not within rounding: a later schedule multiplies these values.
    assert got[3] == [0.1] * 4 and got[-1] == [0.1] * 4
    assert sched.done


def test_done_flips_when_all_arrive():
    opt = torch.optim.SGD(depth_param_groups(_mlp(), 0.1, min_lr=5e-3), lr=0.1)
    sched = LeRaCScheduler(opt, base_lr=0.1)
    flags = []
    for _ in range(4):
        flags.append(sched.done)
        sched.step_epoch()
    assert flags == [False, False, False, True]


def test_stop_epoch_freezes_curriculum():
    opt = torch.optim.SGD(depth_param_groups(_mlp(), 0.1, min_lr=5e-3), lr=0.1)
    sched = LeRaCScheduler(opt, base_lr=0.1, stop_epoch=3)
    got = _trajectory(sched, 4)
    # Growth at the end of epochs 1 and 2 only (epoch < stop_epoch), as in the official code.
    assert got[2] == pytest.approx([0.1, 0.1, 0.1, 1e-2], rel=1e-12)
    assert got[3] == got[2] and got[4] == got[2]
    assert sched.done


def test_non_power_of_ten_ladder_still_arrives():
    opt = torch.optim.SGD(depth_param_groups(_mlp(), 0.05, min_lr=1e-5, classifier_factor=1e-3), lr=0.05)
    got = _trajectory(LeRaCScheduler(opt, base_lr=0.05), 4)
    assert got[0] == pytest.approx([0.05, 5e-3, 5e-4, 5e-5], rel=1e-12)
    assert got[4] == [0.05] * 4


def test_shared_parameter_is_grouped_once():
    emb, head = nn.Embedding(10, 4), nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    groups = depth_param_groups(nn.ModuleDict({"emb": emb, "mid": nn.Linear(4, 4), "head": head}), 0.1)
    assert [g["name"] for g in groups] == ["emb", "mid"]
    torch.optim.SGD(groups, lr=0.1)
