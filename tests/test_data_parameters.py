import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainers.data_parameters import (
    LOG_SIGMA_BOUNDS,
    ClassDataParameters,
    InstanceParameters,
    SparseSGD,
    data_parameter_loss,
    effective_sigma,
    init_log_sigma,
)

LO, HI = LOG_SIGMA_BOUNDS


def _dloss_dsigma(logits: torch.Tensor, labels: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Paper Eq. 5: (1 - p_y) / sigma^2 * (z_y - sum_{j != y} q_j z_j), q_j = p_j / (1 - p_y)."""
    p = torch.softmax(logits / sigma[:, None], dim=1)
    rows = torch.arange(len(labels))
    p_y, z_y = p[rows, labels], logits[rows, labels]
    q = p.clone()
    q[rows, labels] = 0.0
    q = q / (1 - p_y)[:, None]
    return (1 - p_y) / sigma**2 * (z_y - (q * logits).sum(1))


def _batch(b: int = 16, c: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g, dtype=torch.float64) * 3, torch.randint(0, c, (b,), generator=g)


def test_instance_gradient_matches_closed_form():
    logits, labels = _batch()
    log_sigma = (torch.rand(16, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    sigma = effective_sigma("instance", instance_log_sigma_for_batch=log_sigma)
    loss, _ = data_parameter_loss(logits, labels, sigma, instance_log_sigma_batch=log_sigma, wd_inst=0.01)
    loss.backward()
    s = log_sigma.detach().exp()
    expected = s * _dloss_dsigma(logits, labels, s) / 16 + 0.01 * log_sigma.detach()
    torch.testing.assert_close(log_sigma.grad, expected, rtol=1e-10, atol=1e-12)


def test_class_gradient_matches_closed_form_with_repeats_and_wd():
    logits, labels = _batch(b=32, c=5, seed=1)
    labels = labels % 3  # classes 3 and 4 absent
    cdp = ClassDataParameters(5).double()
    with torch.no_grad():
        cdp.log_sigma.uniform_(-1, 1)
    batch_log_sigma = cdp(labels)
    sigma = effective_sigma("class", class_log_sigma_for_targets=batch_log_sigma)
    loss, _ = data_parameter_loss(logits, labels, sigma, class_log_sigma_batch=batch_log_sigma, wd_class=5e-4)
    loss.backward()
    ls = cdp.log_sigma.detach()
    per_sample = ls[labels].exp() * _dloss_dsigma(logits, labels, ls[labels].exp()) / 32
    counts = torch.bincount(labels, minlength=5).double()
    expected = torch.zeros(5, dtype=torch.float64).index_add_(0, labels, per_sample) + 5e-4 * counts * ls
    torch.testing.assert_close(cdp.log_sigma.grad, expected, rtol=1e-10, atol=1e-12)
    assert torch.equal(cdp.log_sigma.grad[3:], torch.zeros(2, dtype=torch.float64))


def test_joint_gradient_chain_rule():
    logits, labels = _batch(seed=2)
    cls = (torch.rand(16, dtype=torch.float64) - 0.5).requires_grad_(True)
    inst = (torch.rand(16, dtype=torch.float64) - 3).requires_grad_(True)
    sigma = effective_sigma("joint", cls, inst)
    loss, _ = data_parameter_loss(logits, labels, sigma, wd_class=0.0)
    loss.backward()
    dsigma = _dloss_dsigma(logits, labels, sigma.detach()) / 16
    torch.testing.assert_close(cls.grad, cls.detach().exp() * dsigma, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(inst.grad, inst.detach().exp() * dsigma, rtol=1e-10, atol=1e-12)


def test_loss_value_and_unscaled_ce():
    logits, labels = _batch(seed=3)
    log_sigma = torch.full((16,), math.log(2.0), dtype=torch.float64)
    sigma = effective_sigma("instance", instance_log_sigma_for_batch=log_sigma)
    loss, ce = data_parameter_loss(logits, labels, sigma, instance_log_sigma_batch=log_sigma, wd_inst=0.1)
    expected = F.cross_entropy(logits / 2, labels) + 0.5 * 0.1 * 16 * math.log(2.0) ** 2
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(ce, F.cross_entropy(logits, labels, reduction="none"))
    assert not ce.requires_grad
    with pytest.raises(ValueError):
        effective_sigma("joint", class_log_sigma_for_targets=log_sigma)


def test_sparse_sgd_absent_class_frozen_and_present_matches_sgd():
    cdp = ClassDataParameters(5)
    with torch.no_grad():
        cdp.log_sigma.copy_(torch.tensor([0.1, -0.2, 0.3, 0.5, -0.5]))
    ref = cdp.log_sigma.detach().clone().requires_grad_(True)
    opt = SparseSGD(cdp.parameters(), lr=0.1)
    ref_opt = torch.optim.SGD([ref], lr=0.1, momentum=0.9)
    initial = cdp.log_sigma.detach().clone()
    grads = [torch.tensor([0.3, -0.7, 0.2, 0, 0]), torch.tensor([0.1, 0.4, -0.6, 0, 0])]
    grads.append(torch.tensor([-0.2, 0.5, 0, 0, 0]))  # class 2 absent in the last step
    for i, g in enumerate(grads):
        if i == 2:
            before = cdp.log_sigma.detach().clone()
            buf_before = opt.state[cdp.log_sigma]["momentum_buffer"].clone()
        cdp.log_sigma.grad, ref.grad = g.clone(), g.clone()
        opt.step()
        ref_opt.step()
    buf = opt.state[cdp.log_sigma]["momentum_buffer"]
    assert torch.equal(cdp.log_sigma[2], before[2]) and torch.equal(buf[2], buf_before[2])
    assert torch.equal(cdp.log_sigma[3:], initial[3:]) and torch.equal(buf[3:], torch.zeros(2))
    torch.testing.assert_close(cdp.log_sigma[:2], ref[:2], rtol=0, atol=0)
    assert not torch.equal(cdp.log_sigma[:2], initial[:2])


def test_sparse_sgd_rejects_weight_decay_and_clamps():
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError):
        SparseSGD([p], lr=0.1, weight_decay=1e-4)
    opt = SparseSGD([p], lr=0.1)
    p.grad = torch.tensor([1e6, -1e6, 0.0])
    opt.step()
    assert p.tolist() == pytest.approx([LO, HI, 0.0])
    q = torch.nn.Parameter(torch.zeros(1))
    q.grad = torch.tensor([1e6])
    SparseSGD([q], lr=0.1, clamp=None).step()
    assert q.item() < LO


def test_instance_parameters_sparse_update():
    rng = np.random.default_rng(0)
    log_sigma = rng.uniform(-1, 1, 10).astype(np.float32)
    ip = InstanceParameters(log_sigma, np.zeros(10, np.float32))
    g1 = torch.tensor([0.5, -0.25, 0.75])
    ip.step(np.array([0, 1, 2]), g1, lr=0.2)
    expected = torch.from_numpy(log_sigma[:3]) - 0.2 * g1
    torch.testing.assert_close(ip.log_sigma[:3], expected, rtol=0, atol=0)
    assert torch.equal(ip.momentum[:3], g1)
    after_first = ip.log_sigma.clone(), ip.momentum.clone()
    # Position 2 is in the batch with an exactly-zero gradient, 3 is absent: neither moves.
    ip.step(torch.tensor([0, 1, 2]), torch.tensor([1.0, 1.0, 0.0]), lr=0.2)
    assert torch.equal(ip.log_sigma[2:], after_first[0][2:])
    assert torch.equal(ip.momentum[2:], after_first[1][2:])
    assert torch.equal(ip.log_sigma[3:], torch.from_numpy(log_sigma[3:]))
    torch.testing.assert_close(ip.momentum[:2], 0.9 * g1[:2] + 1.0, rtol=0, atol=0)


def test_instance_parameters_training_step_and_repeats():
    ip = InstanceParameters(np.zeros(6, np.float32), np.zeros(6, np.float32))
    logits, labels = torch.randn(3, 4), torch.tensor([0, 1, 2])
    leaf = ip.for_batch([4, 1, 4])
    assert leaf.is_leaf and leaf.requires_grad
    sigma = effective_sigma("instance", instance_log_sigma_for_batch=leaf)
    loss, _ = data_parameter_loss(logits, labels, sigma)
    loss.backward()
    ip.step([4, 1, 4], leaf.grad, lr=0.5)
    assert ip.log_sigma[4].item() == pytest.approx(-0.5 * (leaf.grad[0] + leaf.grad[2]).item(), rel=1e-6)
    assert ip.log_sigma[1].item() == pytest.approx(-0.5 * leaf.grad[1].item(), rel=1e-6)
    assert torch.equal(ip.log_sigma[[0, 2, 3, 5]], torch.zeros(4))


def test_instance_clamp_huge_gradient_and_joint_init():
    ip = InstanceParameters(np.zeros(4, np.float32), np.zeros(4, np.float32))
    ip.step([0, 1], torch.tensor([1e9, -1e9]), lr=0.2)
    assert ip.log_sigma.tolist() == pytest.approx([LO, HI, 0.0, 0.0])
    _, inst0 = init_log_sigma("joint")
    assert inst0 == pytest.approx(math.log(1e-3))
    joint = InstanceParameters(np.full(4, inst0, np.float32), np.zeros(4, np.float32))
    joint.step([0], torch.tensor([0.0]), lr=0.2)
    # The whole shard is clamped, as in the released code: sigma_inst 0.001 becomes 0.05.
    assert joint.log_sigma.tolist() == pytest.approx([LO] * 4)
    free = InstanceParameters(np.zeros(1, np.float32), np.zeros(1, np.float32), clamp=None)
    free.step([0], torch.tensor([1e9]), lr=0.2)
    assert free.log_sigma.item() < LO


def test_instance_numpy_round_trip_is_exact_and_copied():
    rng = np.random.default_rng(1)
    ls, mom = rng.standard_normal(100).astype(np.float32), rng.standard_normal(100).astype(np.float32)
    ip = InstanceParameters(ls, mom)
    ls_out, mom_out = ip.to_numpy()
    assert ls_out.dtype == np.float32 and mom_out.dtype == np.float32
    assert np.array_equal(ls_out, ls) and np.array_equal(mom_out, mom)
    ls[0] += 1.0
    assert ip.log_sigma[0].item() != ls[0]
    ls_out[1] += 1.0
    assert ip.log_sigma[1].item() != ls_out[1]
