"""Model specs from the ``model/`` config group, the encoders they build, the spliced MLP."""

import pytest
import torch

from asr.errors import AsrError
from asr.nn import CELLS, MLP, ModelSpec, build_encoder, count_parameters, splice_frames

LIGRU = {"cell": "ligru", "num_layers": 5, "hidden_size": 550, "bidirectional": True,
         "dropout": 0.2, "recurrent_dropout": 0.2, "batch_norm": True, "impl": "fused"}
GRU = {"cell": "gru", "num_layers": 5, "hidden_size": 550, "bidirectional": True, "dropout": 0.2}
LSTM = {**GRU, "cell": "lstm"}
RNN = {"cell": "rnn", "nonlinearity": "relu", "num_layers": 5, "hidden_size": 550,
       "bidirectional": True, "dropout": 0.2}
MLP_YAML = {"cell": "mlp", "num_layers": 4, "hidden_size": 1024, "dropout": 0.15,
            "splice_left": 5, "splice_right": 5}
SHAPES = {"ligru": LIGRU, "gru": GRU, "lstm": LSTM, "rnn": RNN, "mlp": MLP_YAML}


def test_from_dict_yaml_shapes():
    ligru = ModelSpec.from_dict(LIGRU)
    assert (ligru.cell, ligru.num_layers, ligru.hidden_size, ligru.bidirectional) == ("ligru", 5, 550, True)
    assert ligru.dropout == 0.2
    assert ligru.cell_options == {"recurrent_dropout": 0.2, "batch_norm": True, "impl": "fused"}
    for shape in (GRU, LSTM):
        spec = ModelSpec.from_dict(shape)
        assert spec.cell == shape["cell"] and spec.cell_options == {}
        assert (spec.splice_left, spec.splice_right) == (0, 0)
    assert ModelSpec.from_dict(RNN).cell_options == {"nonlinearity": "relu"}
    mlp = ModelSpec.from_dict(MLP_YAML)
    assert (mlp.num_layers, mlp.hidden_size, mlp.dropout) == (4, 1024, 0.15)
    assert (mlp.splice_left, mlp.splice_right, mlp.cell_options) == (5, 5, {})


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_round_trip(name):
    spec = ModelSpec.from_dict(SHAPES[name])
    plain = spec.to_dict()
    assert type(plain) is dict and ModelSpec.from_dict(plain) == spec
    assert plain == {**{"bidirectional": True, "splice_left": 0, "splice_right": 0, "front_mlp": [], "head_mlp": []},
                     **SHAPES[name]}


def test_unknown_cell_lists_cells():
    with pytest.raises(AsrError) as err:
        ModelSpec.from_dict({**GRU, "cell": "transformer"})
    for cell in ("mlp",) + CELLS:
        assert cell in str(err.value)


@pytest.mark.parametrize("d, word", [
    ({**GRU, "batch_norm": True}, "batch_norm"),             # a ligru option on gru
    ({**LIGRU, "nonlinearity": "relu"}, "nonlinearity"),     # an rnn option on ligru
    ({**MLP_YAML, "impl": "fused"}, "impl"),                 # mlp takes no cell options
    ({**RNN, "nonlinearity": "sigmoid"}, "nonlinearity"),    # bad value, caught at once
    ({**LIGRU, "impl": "cuda"}, "impl"),
    ({**LIGRU, "layer_norm": True}, "layer_norm"),           # that is sligru
    ({**GRU, "input_size": 40}, "input_size"),
    ({**GRU, "splice_left": 2}, "splice"),                   # context is mlp-only
    ({**GRU, "num_layers": 0}, "num_layers"),
    ({**GRU, "dropout": 1.0}, "dropout"),
    ({**GRU, "bidirectional": "yes"}, "bidirectional"),
    ({"cell": "gru", "num_layers": 2}, "hidden_size"),
])
def test_bad_options_name_the_key(d, word):
    with pytest.raises(AsrError, match=word):
        ModelSpec.from_dict(d)


def test_validation_does_not_shift_the_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    ModelSpec.from_dict(LIGRU)
    torch.testing.assert_close(torch.rand(3), expected)


def test_none_cell_options_are_absent_and_bidirectional_ignored_for_mlp():
    spec = ModelSpec.from_dict({**GRU, "recurrent_dropout": None, "impl": None})
    assert spec.cell_options == {}
    mlp = ModelSpec.from_dict({**MLP_YAML, "bidirectional": False, "num_layers": 1, "hidden_size": 3})
    model = build_encoder(mlp, 2)
    assert model(torch.randn(1, 4, 2)).shape == (1, 4, 3)


def test_recurrent_spec_builds_and_runs():
    spec = ModelSpec.from_dict({**LIGRU, "num_layers": 2, "hidden_size": 4, "impl": "reference"})
    model = build_encoder(spec, 5)
    assert model.output_size == 8
    x = torch.randn(2, 7, 5)
    lengths = torch.tensor([7, 4])
    out = model(x, lengths)
    assert out.shape == (2, 7, 8)
    assert torch.all(out[1, 4:] == 0) and torch.isfinite(out).all()
    gru = build_encoder(ModelSpec.from_dict({**RNN, "num_layers": 2, "hidden_size": 3}), 5)
    assert gru(x, lengths).shape == (2, 7, gru.output_size) and gru.output_size == 6


def test_splice_replicates_each_utterances_edges():
    # Two utterances, F = 1: frames 1, 2, 3 (then padding 99) and 10, 20, 30, 40.
    x = torch.tensor([[1.0, 2.0, 3.0, 99.0], [10.0, 20.0, 30.0, 40.0]])[..., None]
    out = splice_frames(x, torch.tensor([3, 4]), left=2, right=1)
    assert out.shape == (2, 4, 4)
    assert out[0, :3].tolist() == [[1, 1, 1, 2], [1, 1, 2, 3], [1, 2, 3, 3]]
    assert out[1].tolist() == [[10, 10, 10, 20], [10, 10, 20, 30], [10, 20, 30, 40], [20, 30, 40, 40]]
    assert 99.0 not in out  # padding is never read
    # F = 2 keeps each frame's features together, frames in time order.
    y = torch.arange(6.0).view(1, 3, 2)
    assert splice_frames(y, None, 1, 0)[0].tolist() == [[0, 1, 0, 1], [0, 1, 2, 3], [2, 3, 4, 5]]


def test_mlp_padded_batch_equals_each_utterance_alone():
    torch.manual_seed(0)
    model = build_encoder(ModelSpec.from_dict({**MLP_YAML, "num_layers": 2, "hidden_size": 6,
                                               "splice_left": 2, "splice_right": 3}), 3).double()
    # Non-trivial running statistics, then eval.
    model.train()
    model(torch.randn(4, 9, 3, dtype=torch.float64) * 2 + 1, torch.tensor([9, 5, 2, 7]))
    model.eval()
    lengths = torch.tensor([9, 5, 1])
    utts = [torch.randn(int(n), 3, dtype=torch.float64) for n in lengths]
    batch = torch.full((3, 9, 3), 1e6, dtype=torch.float64)  # garbage padding
    for b, utt in enumerate(utts):
        batch[b, :len(utt)] = utt
    out = model(batch, lengths)
    assert out.shape == (3, 9, model.output_size)
    for b, utt in enumerate(utts):
        torch.testing.assert_close(out[b, :len(utt)], model(utt[None])[0])
        assert torch.all(out[b, len(utt):] == 0)


def test_mlp_training_batch_norm_ignores_padding():
    torch.manual_seed(1)
    model = MLP(2, 4, num_layers=1, splice_left=1, splice_right=1).double().train()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    lengths = torch.tensor([5, 3])
    garbage = x.clone()
    garbage[1, 3:] = 1e4
    torch.testing.assert_close(model(x, lengths), model(garbage, lengths))


def test_parameter_count_by_hand():
    spec = ModelSpec(cell="mlp", num_layers=2, hidden_size=4, splice_left=1, splice_right=2)
    model = build_encoder(spec, 3)
    # Layer 1: (3 * 4 spliced inputs) x 4 weights, no bias, + 4 + 4 batch-norm scale/shift;
    # layer 2: 4 x 4 + 4 + 4.
    assert count_parameters(model) == (12 * 4 + 8) + (4 * 4 + 8) == 80
    assert model.output_size == 4
