"""Masked batch norm: statistics from valid frames only."""

import torch

from asr.nn import MaskedBatchNorm1d
from asr.nn.padding import direction_rows, lengths_to_mask, merge_directions, reverse_padded, split_directions


def test_statistics_equal_those_of_valid_frames():
    torch.manual_seed(0)
    x = torch.randn(3, 6, 4, dtype=torch.float64)
    lengths = torch.tensor([6, 4, 1])
    mask = lengths_to_mask(lengths, 3, 6)
    masked = MaskedBatchNorm1d(4).double()
    plain = torch.nn.BatchNorm1d(4).double()
    out = masked(x, mask)
    expected = plain(x[mask])
    torch.testing.assert_close(out[mask], expected)
    torch.testing.assert_close(masked.running_mean, plain.running_mean)
    torch.testing.assert_close(masked.running_var, plain.running_var)


def test_padded_values_do_not_change_valid_outputs():
    torch.manual_seed(1)
    x = torch.randn(2, 5, 3)
    mask = lengths_to_mask(torch.tensor([5, 2]), 2, 5)
    garbage = x.clone()
    garbage[1, 2:] = 1e4
    norm = MaskedBatchNorm1d(3)
    torch.testing.assert_close(norm(x, mask)[mask], norm(garbage, mask)[mask])


def test_eval_uses_running_statistics():
    norm = MaskedBatchNorm1d(2).eval()
    norm.running_mean.fill_(1.0)
    norm.running_var.fill_(4.0)
    out = norm(torch.full((1, 3, 2), 3.0))
    torch.testing.assert_close(out, torch.full((1, 3, 2), 1.0), atol=1e-4, rtol=0)


def test_reverse_padded_reverses_within_length_and_is_an_involution():
    x = torch.arange(8.0).view(2, 4, 1)
    lengths = torch.tensor([4, 2])
    out = reverse_padded(x, lengths)
    assert out[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    torch.testing.assert_close(reverse_padded(out, lengths), x)


def test_split_and_merge_directions_round_trip_with_gradients():
    torch.manual_seed(2)
    lengths = torch.tensor([3, 1])
    x = torch.randn(2, 3, 2 * 4, dtype=torch.float64, requires_grad=True)
    rows = direction_rows(lengths, 2, 3, 2, x.device)
    split = split_directions(x, rows, 2)  # [T, D, B, 4]
    torch.testing.assert_close(split[:, 0].transpose(0, 1), x[..., :4])
    torch.testing.assert_close(split[:, 1].transpose(0, 1), reverse_padded(x[..., 4:], lengths))
    torch.testing.assert_close(merge_directions(split, rows), x)
    assert torch.autograd.gradcheck(lambda x: merge_directions(split_directions(x, rows, 2) ** 2, rows), (x,))
