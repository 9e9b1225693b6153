"""Training losses against hand-computed values and NumPy references written here."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.losses import bce_loss, distribution_kl_loss, focal_bce_loss, hinge_triplet_loss
from training.models.config import LossConfig

# Rows are captions, columns videos; caption i belongs to video i.
SCORES = torch.tensor([[0.9, 0.5, 0.1],
                       [0.3, 0.8, 0.7],
                       [0.5, 0.6, 0.4]])
# By hand, margin 0.2. Text->video costs per row: row 0 none; row 1 video 2: .2+.7-.8 = .1;
# row 2 video 0: .2+.5-.4 = .3, video 1: .2+.6-.4 = .4. Video->text costs per column: column 2
# caption 1: .2+.7-.4 = .5 (caption 0: .2+.1-.4 < 0); columns 0 and 1 none (column 1, caption 2: .2+.6-.8 = 0).


def test_hinge_max_violation_literal():
    loss = hinge_triplet_loss(SCORES, LossConfig(margin=0.2, max_violation=True))
    assert loss.item() == pytest.approx((0.1 + 0.4 + 0.5) / 3, abs=1e-6)


def test_hinge_sum_over_negatives_literal():
    loss = hinge_triplet_loss(SCORES, LossConfig(margin=0.2, max_violation=False))
    assert loss.item() == pytest.approx((0.1 + 0.3 + 0.4 + 0.5) / 3, abs=1e-6)


def test_hinge_same_video_positive_literal():
    # Captions 1 and 2 both describe video 1 (ids [0, 1, 1]): pairs (1, 2) and (2, 1) are no longer negatives.
    # Left: row 2 video 0 (.3); column 2 caption 0 is below zero.
    config = LossConfig(margin=0.2, max_violation=True, same_video_positive=True)
    loss = hinge_triplet_loss(SCORES, config, torch.tensor([0, 1, 1]))
    assert loss.item() == pytest.approx(0.3 / 3, abs=1e-6)
    # Without the option the ids change nothing.
    plain = hinge_triplet_loss(SCORES, LossConfig(margin=0.2), torch.tensor([0, 1, 1]))
    assert plain.item() == pytest.approx(1.0 / 3, abs=1e-6)


def _hinge_reference(scores: np.ndarray, margin: float, max_violation: bool, ids: np.ndarray) -> float:
    b = scores.shape[0]
    total = 0.0
    for i in range(b):
        t2v = [max(0.0, margin + scores[i, j] - scores[i, i]) for j in range(b) if ids[j] != ids[i]]
        v2t = [max(0.0, margin + scores[j, i] - scores[i, i]) for j in range(b) if ids[j] != ids[i]]
        agg = max if max_violation else sum
        total += (agg(t2v) if t2v else 0.0) + (agg(v2t) if v2t else 0.0)
    return total / b


@pytest.mark.parametrize("max_violation", [True, False])
@pytest.mark.parametrize("same_video", [True, False])
def test_hinge_matches_numpy_reference(max_violation, same_video):
    rng = np.random.default_rng(3)
    scores = rng.uniform(-1, 1, (6, 6)).astype(np.float32)
    ids = np.array([0, 1, 1, 2, 3, 3])
    config = LossConfig(margin=0.25, max_violation=max_violation, same_video_positive=same_video)
    got = hinge_triplet_loss(torch.from_numpy(scores), config, torch.from_numpy(ids)).item()
    expected = _hinge_reference(scores, 0.25, max_violation, ids if same_video else np.arange(6))
    assert got == pytest.approx(expected, abs=1e-5)


def test_hinge_rejects_a_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        hinge_triplet_loss(torch.zeros(2, 3), LossConfig())


def test_bce_literal():
    loss = bce_loss(torch.tensor([0.9, 0.2]), torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, abs=1e-6)


def test_bce_with_ignored_entries_and_batch_reduction_literal():
    probs, targets = torch.tensor([[0.9, 0.2, 0.6]]), torch.tensor([[1.0, 0.0, 0.0]])
    ignored = bce_loss(probs, targets, weight=torch.tensor([[1.0, 1.0, 0.0]]))  # the third entry is left out
    assert ignored.item() == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, abs=1e-6)
    two_rows = bce_loss(probs.repeat(2, 1), targets.repeat(2, 1), reduction="batch")  # sum over columns, mean over rows
    assert two_rows.item() == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.4)), abs=1e-6)


def test_focal_batch_reduction_is_vocabulary_times_the_mean():
    """MCSAN's Eq. 35 averages over the batch only: |V| times the mean over batch x vocabulary."""
    logits, targets = torch.randn(4, 7), (torch.rand(4, 7) < 0.3).float()
    mean = focal_bce_loss(logits, targets)
    assert focal_bce_loss(logits, targets, reduction="batch").item() == pytest.approx(7 * mean.item(), rel=1e-6)


def test_focal_literal_at_zero_logit():
    # p = 0.5: positive -0.25 * 0.5^2 * log 0.5; negative -0.75 * 0.5^2 * log 0.5.
    pos = focal_bce_loss(torch.zeros(1), torch.ones(1)).item()
    neg = focal_bce_loss(torch.zeros(1), torch.zeros(1)).item()
    assert pos == pytest.approx(0.25 * 0.25 * math.log(2), abs=1e-7)
    assert neg == pytest.approx(0.75 * 0.25 * math.log(2), abs=1e-7)


def test_focal_matches_numpy_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4, 7))
    targets = (rng.uniform(size=(4, 7)) < 0.3).astype(np.float64)
    alpha, gamma = 0.25, 2.0
    total = 0.0
    for x, y in zip(logits.ravel(), targets.ravel()):
        p = 1 / (1 + math.exp(-x))
        if y == 1:
            total += -alpha * (1 - p) ** gamma * math.log(p)
        else:
            total += -(1 - alpha) * p ** gamma * math.log(1 - p)
    got = focal_bce_loss(torch.tensor(logits), torch.tensor(targets), alpha, gamma).item()
    assert got == pytest.approx(total / logits.size, rel=1e-6)


def test_focal_down_weights_easy_examples_relative_to_bce():
    # An easy negative (p = 0.01) loses far more of its BCE than a hard one (p = 0.9).
    easy, hard = torch.tensor([math.log(0.01 / 0.99)]), torch.tensor([math.log(0.9 / 0.1)])
    zero = torch.zeros(1)
    ratio_easy = focal_bce_loss(easy, zero).item() / bce_loss(torch.sigmoid(easy), zero).item()
    ratio_hard = focal_bce_loss(hard, zero).item() / bce_loss(torch.sigmoid(hard), zero).item()
    assert ratio_easy == pytest.approx(0.75 * 0.01 ** 2, rel=1e-4)
    assert ratio_hard == pytest.approx(0.75 * 0.9 ** 2, rel=1e-4)


def test_distribution_kl_matches_numpy_reference():
    rng = np.random.default_rng(1)
    video, text = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))

    def softmax(x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p_text, p_video = softmax(text), softmax(video)
    expected = np.mean([(p_text[b] * np.log(p_text[b] / p_video[b])).sum() for b in range(5)])
    got = distribution_kl_loss(torch.tensor(video), torch.tensor(text)).item()
    assert got == pytest.approx(expected, rel=1e-6)
    # PyTorch's KLDivLoss(input log-probs, target probs, "batchmean") is the same quantity.
    torch_kl = torch.nn.KLDivLoss(reduction="batchmean")(torch.log_softmax(torch.tensor(video), 1),
                                                          torch.softmax(torch.tensor(text), 1)).item()
    assert got == pytest.approx(torch_kl, rel=1e-6)


def test_distribution_kl_is_zero_for_equal_and_asymmetric_otherwise():
    a = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    b = torch.tensor([[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    assert distribution_kl_loss(a, a).item() == pytest.approx(0.0, abs=1e-7)
    # Shift-invariant per row (softmax), so adding a constant to a row changes nothing.
    assert distribution_kl_loss(a + 5.0, a).item() == pytest.approx(0.0, abs=1e-6)
    assert distribution_kl_loss(a, b).item() > 0
    assert distribution_kl_loss(a, b).item() != pytest.approx(distribution_kl_loss(b, a).item(), abs=1e-3)
