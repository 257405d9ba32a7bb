"""Optimiser configs from the ``optim/`` config group, the optimisers, the newbob schedule."""

import pytest
import torch

from asr.errors import AsrError
from asr.train.optim import NewBob, OptimConfig, build_optimizer

COMMON = {"weight_decay": 0.0, "epochs": 24, "max_grad_norm": 5.0, "newbob_factor": 0.5,
          "newbob_threshold": 0.001, "max_frames": None}
RMSPROP = {"name": "rmsprop", "lr": 0.0004, "alpha": 0.95, "eps": 1.0e-8, "batch_size": 8, **COMMON}
SGD = {"name": "sgd", "lr": 0.08, "momentum": 0.0, "batch_size": 128, **COMMON}
ADAM = {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1.0e-8, "batch_size": 8, **COMMON}


def params():
    return [torch.nn.Parameter(torch.ones(3))]


@pytest.mark.parametrize("d, kind", [(RMSPROP, torch.optim.RMSprop), (SGD, torch.optim.SGD),
                                     (ADAM, torch.optim.Adam)])
def test_build_each_optimiser_from_dict(d, kind):
    cfg = OptimConfig.from_dict(d)
    optimizer = build_optimizer(cfg, params())
    assert type(optimizer) is kind
    group = optimizer.param_groups[0]
    assert group["lr"] == d["lr"] and group["weight_decay"] == 0.0
    if kind is torch.optim.RMSprop:
        assert (group["alpha"], group["eps"]) == (0.95, 1e-8)
    elif kind is torch.optim.Adam:
        assert tuple(group["betas"]) == (0.9, 0.999) and cfg.betas == (0.9, 0.999)
    assert OptimConfig.from_dict(cfg.to_dict()) == cfg
    # The YAML's keys, lists as lists (rmsprop also takes momentum, default 0).
    assert cfg.to_dict() == ({**d, "momentum": 0.0} if d["name"] == "rmsprop" else d)


def test_defaults_are_pytorch_kaldi_timit():
    cfg = OptimConfig()
    assert (cfg.name, cfg.lr, cfg.alpha, cfg.eps, cfg.epochs, cfg.batch_size) == \
        ("rmsprop", 0.0004, 0.95, 1e-8, 24, 8)
    assert (cfg.newbob_factor, cfg.newbob_threshold) == (0.5, 0.001)


@pytest.mark.parametrize("d, word", [
    ({**ADAM, "momentum": 0.9}, "momentum"),      # dead key for adam
    ({**SGD, "eps": 1e-8}, "eps"),                # dead key for sgd
    ({**RMSPROP, "betas": [0.9, 0.99]}, "betas"),
    ({**RMSPROP, "nesterov": True}, "nesterov"),  # unknown key
    ({**RMSPROP, "name": "adagrad"}, "adagrad"),
    ({**ADAM, "betas": [0.9]}, "betas"),
    ({**SGD, "lr": 0.0}, "lr"),
    ({**SGD, "batch_size": 0}, "batch_size"),
    ({**RMSPROP, "eps": "1e-8"}, "eps"),          # unparsed YAML 1.1 exponent
])
def test_rejected_keys_are_named(d, word):
    with pytest.raises(AsrError, match=word):
        OptimConfig.from_dict(d)


def test_direct_construction_rejects_dead_values():
    with pytest.raises(AsrError, match="momentum"):
        OptimConfig(name="adam", momentum=0.9)


def test_newbob_halves_exactly_when_improvement_below_threshold():
    optimizer = build_optimizer(OptimConfig.from_dict(SGD), params())
    sched = NewBob(optimizer, factor=0.5, threshold=0.25)
    assert sched.step(0.40) == 0.08                  # first epoch: nothing to compare
    assert sched.step(0.20) == 0.08                  # improvement 0.5
    assert sched.step(0.15) == 0.08                  # improvement 0.25 == threshold: kept
    assert sched.step(0.12) == pytest.approx(0.04)   # improvement 0.2 < 0.25: halved
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.04)
    assert sched.step(0.13) == pytest.approx(0.02)   # worse: halved
    assert sched.step(0.06) == pytest.approx(0.02)   # improvement vs the previous epoch (0.13)


def test_newbob_from_config_uses_its_threshold():
    cfg = OptimConfig.from_dict(RMSPROP)
    optimizer = build_optimizer(cfg, params())
    sched = NewBob.from_config(cfg, optimizer)
    sched.step(0.300)
    assert sched.step(0.2999) == pytest.approx(0.0002)  # 0.033 % < 0.1 %
    assert sched.step(0.2000) == pytest.approx(0.0002)


def test_newbob_state_round_trips():
    optimizer = build_optimizer(OptimConfig.from_dict(ADAM), params())
    sched = NewBob(optimizer, 0.5, 0.01)
    for err in (0.5, 0.4, 0.399):
        sched.step(err)
    state = sched.state_dict()
    assert state == {"lr": pytest.approx(0.0005), "prev_err": 0.399, "num_steps": 3}
    fresh_optimizer = build_optimizer(OptimConfig.from_dict(ADAM), params())
    resumed = NewBob(fresh_optimizer, 0.5, 0.01)
    resumed.load_state_dict(dict(state))
    assert resumed.state_dict() == state
    assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(0.0005)
    assert resumed.step(0.398) == sched.step(0.398)
    with pytest.raises(AsrError, match="keys"):
        resumed.load_state_dict({"lr": 1.0})
    with pytest.raises(AsrError, match="dev error"):
        resumed.step(float("nan"))
