"""Unit tests for notebook 03 (He et al., ISBI 2020): 2D-ResNet18+LSTM, 3D-ResNet18, scores."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from brainage_lib.errors import BrainAgeError
from brainage_lib.metrics.scores import cs_area, cumulative_score, mae_by_group
from brainage_lib.papers.lstm.resnet3d import ResNet3D, ResNet3DConfig
from brainage_lib.papers.lstm.resnet_lstm import ResNetLSTM, ResNetLSTMConfig, pool_adjacent_slices
from brainage_lib.papers.lstm.evaluation import DISCOVERY_EDGES, DISCOVERY_LABELS, REPLICATION_EDGES, REPLICATION_LABELS
from brainage_lib.papers.lstm import evaluation as L

# Small configs: 1/8 width, the smallest inputs instance norm allows in layer4 (2 voxels).
SMALL_LSTM = ResNetLSTMConfig(n_slices=7, slice_size=33, pool_k=3, lstm_hidden=5, widen_factor=0.125)
SMALL_3D = ResNet3DConfig(input_shape=(40, 48, 36), widen_factor=0.125)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ----------------------------------------------------------------- (a) paper-size forward


def _record_shapes(modules: dict[str, nn.Module]) -> dict[str, list[tuple[int, ...]]]:
    """Register forward hooks that store the input and output shapes of each named module."""
    shapes: dict[str, list[tuple[int, ...]]] = {}

    def hook(name: str) -> Callable[..., None]:
        def store(mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: object) -> None:
            out = output[0] if isinstance(output, tuple) else output  # nn.LSTM returns (seq, (h, c))
            shapes[name] = [tuple(inputs[0].shape), tuple(out.shape)]
        return store

    for name, mod in modules.items():
        mod.register_forward_hook(hook(name))
    return shapes


def test_lstm_forward_at_paper_size() -> None:
    model = ResNetLSTM().eval()
    shapes = _record_shapes({"encoder": model.encoder, "stem": model.encoder.conv1, "layer4": model.encoder.layer4,
                             "lstm": model.lstm, "head": model.head})
    with torch.no_grad():
        out = model(torch.randn(1, 112, 50, 50))  # (B, S, H, W)
    assert out.shape == (1, 1)
    assert torch.isfinite(out).all()
    assert shapes["stem"] == [(112, 1, 50, 50), (112, 64, 25, 25)]  # every slice, 7x7 stride-2 stem
    assert shapes["layer4"][1] == (112, 512, 2, 2)  # 50 -> 25 -> 13 -> 13 -> 7 -> 4 -> 2
    assert shapes["encoder"][1] == (112, 512)  # one 512-d feature per slice
    assert shapes["lstm"] == [(1, 28, 512), (1, 28, 128)]  # 112 // 4 pooled steps; both directions of 64
    assert shapes["head"] == [(1, 28 * 128), (1, 1)]  # every LSTM output -> FC -> age


def test_resnet3d_forward_at_paper_size() -> None:
    model = ResNet3D().eval()
    net = model.net
    shapes = _record_shapes({"stem": net.conv1, "layer4": net.layer4, "pool": net.avgpool, "fc": net.fc})
    with torch.no_grad():
        out = model(torch.randn(1, 1, 128, 160, 112))  # (B, 1, D, H, W)
    assert out.shape == (1, 1)
    assert torch.isfinite(out).all()
    assert net.conv1.kernel_size == (7, 7, 7) and net.conv1.stride == (2, 2, 2)
    assert shapes["stem"][1] == (1, 64, 64, 80, 56)
    assert shapes["layer4"][1] == (1, 512, 4, 5, 4)
    assert shapes["pool"][1][:2] == (1, 512)  # global average pooling
    assert shapes["fc"] == [(1, 512), (1, 1)]


def test_stem_kernel_is_a_parameter_of_the_3d_baseline_only() -> None:
    models = L.build_models((40, 48, 36), slice_size=33, pool_k=4, width=0.125, stem_kernel=3)
    cnn, lstm = models[L.CNN3D_NAME], models[L.LSTM_NAME]
    assert cnn.config.stem_kernel == 3 and cnn.net.conv1.kernel_size == (3, 3, 3)
    assert cnn.net.conv1.stride == (2, 2, 2) and cnn.net.conv1.padding == (1, 1, 1)
    assert lstm.encoder.conv1.kernel_size == (7, 7)  # the 2D encoder keeps ResNet18's stem
    convs = [m for m in cnn.modules() if isinstance(m, nn.Conv3d)]
    assert all(c.kernel_size in ((3, 3, 3), (1, 1, 1)) for c in convs)  # the paper's literal reading (+ 1x1 shortcuts)
    with torch.no_grad():
        assert cnn.eval()(torch.randn(1, 1, 40, 48, 36)).shape == (1, 1)


def test_wrong_input_shape_raises() -> None:
    with pytest.raises(BrainAgeError, match="112, 50, 50"):
        ResNetLSTM()(torch.zeros(1, 100, 50, 50))
    with pytest.raises(BrainAgeError, match="40, 48, 36"):
        ResNet3D(SMALL_3D)(torch.zeros(1, 1, 40, 48, 35))


def test_config_rejects_inputs_too_small_for_instance_norm() -> None:
    with pytest.raises(BrainAgeError, match="layer4"):
        ResNetLSTMConfig(slice_size=32)
    with pytest.raises(BrainAgeError, match="pool_k"):
        ResNetLSTMConfig(n_slices=4, pool_k=5)


# ------------------------------------------------------------------- (b) slice pooling


def test_pool_adjacent_slices_hand_case() -> None:
    # slice i carries feature (i, 10 i); k = 3 over 7 slices -> windows {0,1,2}, {3,4,5}; slice 6 dropped
    i = torch.arange(7, dtype=torch.float32)
    feats = torch.stack([i, 10 * i], dim=-1)  # (S, C) = (7, 2)
    feats = torch.stack([feats, -feats])  # (B, S, C) = (2, 7, 2)
    expected = torch.tensor([[[1.0, 10.0], [4.0, 40.0]], [[-1.0, -10.0], [-4.0, -40.0]]])
    torch.testing.assert_close(pool_adjacent_slices(feats, 3), expected)


def test_pool_adjacent_slices_edge_k() -> None:
    feats = torch.randn(1, 4, 3)
    torch.testing.assert_close(pool_adjacent_slices(feats, 1), feats)
    torch.testing.assert_close(pool_adjacent_slices(feats, 4), feats.mean(dim=1, keepdim=True))
    with pytest.raises(BrainAgeError):
        pool_adjacent_slices(feats, 5)


# ------------------------------------------------- (c) bidirectional LSTM and FC width


def test_lstm_paper_widths() -> None:
    cfg = ResNetLSTMConfig()
    model = ResNetLSTM(cfg)
    assert model.lstm.bidirectional and model.lstm.hidden_size == 64
    assert model.lstm.input_size == 512
    assert model.head.in_features == (112 // cfg.pool_k) * 2 * 64


def test_head_sees_every_lstm_output() -> None:
    model = ResNetLSTM(SMALL_LSTM).eval()
    seen: dict[str, torch.Tensor] = {}
    model.lstm.register_forward_hook(lambda m, i, o: seen.__setitem__("lstm", o[0]))
    model.head.register_forward_hook(lambda m, i, o: seen.__setitem__("head", i[0]))
    with torch.no_grad():
        model(torch.randn(2, 7, 33, 33))
    # 7 // 3 = 2 steps, each 2 * hidden = 10 wide (forward and backward directions)
    assert seen["lstm"].shape == (2, 2, 10)
    assert model.head.in_features == 2 * 10
    # the FC input is every step of both directions, in order, not just the last state
    torch.testing.assert_close(seen["head"], seen["lstm"].reshape(2, 20))


# ----------------------------------------------------------------- (d) instance norm


@pytest.mark.parametrize("model_fn", [ResNetLSTM, ResNet3D], ids=["lstm", "3d"])
def test_no_batchnorm_and_one_instance_norm_per_conv(model_fn: type[nn.Module]) -> None:
    model = model_fn()
    kinds = [type(m) for m in model.modules()]
    assert not any(issubclass(k, nn.modules.batchnorm._BatchNorm) for k in kinds)
    n_conv = sum(issubclass(k, nn.modules.conv._ConvNd) for k in kinds)
    n_inorm = sum(issubclass(k, nn.modules.instancenorm._InstanceNorm) for k in kinds)
    assert n_conv == n_inorm == 20  # stem + 16 block convs + 3 shortcut 1x1 convs


@pytest.mark.parametrize(
    ("model", "shape"),
    [(lambda: ResNetLSTM(SMALL_LSTM), (1, 7, 33, 33)), (lambda: ResNet3D(SMALL_3D), (1, 1, 40, 48, 36))],
    ids=["lstm", "3d"],
)
def test_every_conv_is_followed_by_instance_norm(model: Callable[[], nn.Module], shape: tuple[int, ...]) -> None:
    net = model().eval()
    order: list[nn.Module] = []
    for m in net.modules():
        if not list(m.children()):
            m.register_forward_hook(lambda mod, i, o: order.append(mod))
    with torch.no_grad():
        net(torch.randn(*shape))
    conv_at = [j for j, m in enumerate(order) if isinstance(m, nn.modules.conv._ConvNd)]
    assert len(conv_at) == 20
    assert all(isinstance(order[j + 1], nn.modules.instancenorm._InstanceNorm) for j in conv_at)


# ----------------------------------------------------------------------- (e) scores


def test_cumulative_score_hand_example() -> None:
    errors = [4.0, 1.0, 0.5, 2.5, 1.0]
    alphas = [0.0, 0.5, 1.0, 2.0, 3.0, 5.0]
    # sorted errors 0.5, 1, 1, 2.5, 4 -> counts <= alpha: 0, 1, 3, 3, 4, 5 out of 5
    np.testing.assert_allclose(cumulative_score(errors, alphas), [0.0, 0.2, 0.6, 0.6, 0.8, 1.0])


def test_cumulative_score_rejects_signed_errors() -> None:
    with pytest.raises(BrainAgeError, match="signed"):
        cumulative_score([1.0, -0.5], [1.0])


def test_cs_area_hand_example_and_riemann_sum() -> None:
    errors = [0.0, 1.0, 3.0, 5.0]
    # mean(max(4 - e, 0)) / 4 = (4 + 3 + 1 + 0) / 4 / 4
    assert cs_area(errors, 4.0) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    e = np.abs(rng.normal(0, 2, 50))
    alphas = np.linspace(0, 4, 400_001)
    assert cs_area(e, 4.0) == pytest.approx(np.trapezoid(cumulative_score(e, alphas), alphas) / 4, abs=1e-4)
    with pytest.raises(BrainAgeError, match="alpha_max"):
        cs_area(e, 0.0)


def test_lstm_wins_ends_rule_on_the_paper_tables() -> None:
    assert L.lstm_wins_ends(L.PAPER_TABLE3[L.LSTM_NAME][:-1], L.PAPER_TABLE3[L.CNN3D_NAME][:-1]) is True
    assert L.lstm_wins_ends(L.PAPER_TABLE2[L.LSTM_NAME][:-1], L.PAPER_TABLE2[L.CNN3D_NAME][:-1]) is False  # 3D never lower
    nan = float("nan")
    assert L.lstm_wins_ends([1.0, 2.0, 2.0, 1.0], [2.0, nan, 1.5, 2.0]) is None  # an empty middle bin: not testable
    assert L.lstm_wins_ends([1.0, 2.0, 1.0], [2.0, nan, 2.0]) is None  # no middle bin to compare: not testable
    assert L.lstm_wins_ends([1.0, 2.0, 2.0, 1.0], [2.0, 1.5, 3.0, 2.0]) is False  # 3D lower in 1 of 2: no majority
    assert L.lstm_wins_ends([1.0, 2.0, 2.0, 1.0], [2.0, 1.5, 1.5, 2.0]) is True  # 2 of 2
    assert L.lstm_wins_ends([nan, 2.0, 1.0], [2.0, 1.0, 2.0]) is None  # empty end bin: not testable
    assert L.lstm_wins_ends([1.0, 2.0, 3.0], [2.0, 1.0, 2.0]) is False  # LSTM loses the last bin
    with pytest.raises(BrainAgeError):
        L.lstm_wins_ends([1.0, 2.0], [2.0, 1.0])


def test_mae_by_group_discovery_hand_example() -> None:
    ages = [0.5, 5.99, 6.0, 10.5, 11.0, 15.9, 16.0, 23.0, 25.0, -0.1]
    errs = [1.0, 3.0, 2.0, 2.0, 0.5, 1.5, 4.0, 2.0, 9.0, 9.0]
    table = mae_by_group(ages, errs, DISCOVERY_EDGES, DISCOVERY_LABELS)
    assert list(table["group"]) == ["0-5", "6-10", "11-15", "16-22", "all"]
    assert list(table["n"]) == [2, 2, 2, 2, 8]  # 23.0 closes the last group; 25 and -0.1 are out
    np.testing.assert_allclose(table["mae"], [2.0, 2.0, 1.0, 3.0, 2.0])
    np.testing.assert_allclose(
        table["sd"], [math.sqrt(2), 0.0, math.sqrt(0.5), math.sqrt(2), math.sqrt(8.5 / 7)]
    )


def test_mae_by_group_per_year_with_empty_groups() -> None:
    table = mae_by_group([0.2, 5.0, 6.0], [1.0, 2.0, 4.0], REPLICATION_EDGES, REPLICATION_LABELS)
    assert list(table["n"]) == [1, 0, 0, 0, 0, 2, 3]
    assert table["mae"].iloc[0] == 1.0 and math.isnan(table["sd"].iloc[0])
    assert table["mae"].iloc[1:5].isna().all()
    assert table["mae"].iloc[5] == 3.0 and table["sd"].iloc[5] == pytest.approx(math.sqrt(2))


# ------------------------------------------------------------- (f) forward + backward


@pytest.mark.parametrize(
    ("model", "shape"),
    [(lambda: ResNetLSTM(SMALL_LSTM), (2, 7, 33, 33)), (lambda: ResNet3D(SMALL_3D), (2, 1, 40, 48, 36))],
    ids=["lstm", "3d"],
)
def test_small_forward_backward(model: Callable[[], nn.Module], shape: tuple[int, ...]) -> None:
    net = model().train()
    pred = net(torch.randn(*shape))
    assert pred.shape == (shape[0], 1)
    nn.functional.l1_loss(pred, torch.tensor([[5.0], [12.0]])).backward()  # the paper's MAE loss
    grads = {name: p.grad for name, p in net.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    first_conv = next(g for name, g in grads.items() if name.endswith("conv1.weight"))
    assert first_conv.abs().sum() > 0  # the loss reaches the stem through every norm
