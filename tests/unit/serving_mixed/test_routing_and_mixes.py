"""Per-sample routing and mixed adapter sets on a small peft model (real peft layers)."""

from __future__ import annotations

import threading

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer

from tuneforge_serving.lora_slots import slot_name
from tuneforge_serving.mixed.mixes import AdapterMixer, LoraChoice, TooManyLoras
from tuneforge_serving.mixed.routing import BASE, SampleRouter, expand_names

RANK = 2
pytestmark = pytest.mark.filterwarnings("ignore:Already found a `peft_config`:UserWarning")


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = torch.nn.Linear(6, 6)
        self.v = torch.nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.v(torch.tanh(self.q(x)))


def _model(slots: int = 3) -> tuple[_Block, dict[tuple[str, str], LoraLayer]]:
    torch.manual_seed(0)
    model = _Block()
    for index in range(slots):
        config = LoraConfig(
            r=RANK,
            lora_alpha=RANK * (index + 1),
            target_modules=["q", "v"],
            init_lora_weights=False,
        )
        inject_adapter_in_model(config, model, adapter_name=slot_name(index))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape))
    layers = {("unet", p): m for p, m in model.named_modules() if isinstance(m, LoraLayer)}
    return model, layers


def _slot_scale(index: int, key: object = None) -> float:
    """alpha / r of slot `index` in `_model` (alpha = RANK * (index + 1))."""
    return float(index + 1)


def _solo(
    model: _Block, layers: dict[tuple[str, str], LoraLayer], x: torch.Tensor, choice: LoraChoice
) -> torch.Tensor:
    """peft's ordinary path: the choice's slots active at scale x weight, one sample."""
    for layer in layers.values():
        layer._active_adapter = [slot_name(i) for i, _ in choice]
        for index, weight in choice:
            layer.scaling[slot_name(index)] = _slot_scale(index) * weight
    try:
        with torch.no_grad():
            return model(x)
    finally:
        for layer in layers.values():
            for index in range(3):
                layer.scaling[slot_name(index)] = _slot_scale(index)
            layer._active_adapter = [slot_name(0)]


def test_expand_names_repeats_for_cfg_and_refuses_odd_batches() -> None:
    assert expand_names(["a", "b"], 2) == ["a", "b"]
    assert expand_names(["a", "b"], 4) == ["a", "b", "a", "b"]
    with pytest.raises(ValueError, match="whole multiple"):
        expand_names(["a", "b"], 3)


def test_each_sample_gets_its_own_adapter_set_with_its_own_weights() -> None:
    model, layers = _model()
    mixer = AdapterMixer(layers, RANK, _slot_scale, max_combined=2)
    router = SampleRouter.for_modules([model])
    choices: list[LoraChoice] = [((0, 1.0),), (), ((1, 0.5),), ((0, 0.3), (2, 1.5)), ((0, 1.0),)]
    x = torch.randn(len(choices), 6, generator=torch.Generator().manual_seed(1))
    names = mixer.prepare(choices)
    assert names[1] == BASE and names[0] == names[4] and len(set(names)) == 4
    with torch.no_grad(), router.route(names):
        mixed = model(x)
    for position, choice in enumerate(choices):
        expected = _solo(model, layers, x[position : position + 1], choice)
        torch.testing.assert_close(mixed[position : position + 1], expected, atol=1e-5, rtol=1e-5)
    # the same rows doubled (the CFG layout) get the same routing
    with torch.no_grad(), router.route(names):
        doubled = model(torch.cat([x, x]))
    torch.testing.assert_close(doubled[: len(choices)], mixed)
    torch.testing.assert_close(doubled[len(choices) :], mixed)


def test_without_a_route_and_on_other_threads_layers_behave_as_before() -> None:
    model, layers = _model()
    router = SampleRouter.for_modules([model])
    x = torch.randn(2, 6)
    with torch.no_grad():
        before = model(x)
    seen: list[torch.Tensor] = []
    with router.route([BASE, BASE]):
        thread = threading.Thread(target=lambda: seen.append(model(x).detach()))
        thread.start()
        thread.join()
    torch.testing.assert_close(seen[0], before)
    with torch.no_grad():
        torch.testing.assert_close(model(x), before)
    router.remove()
    with torch.no_grad(), router.route([BASE, BASE]):
        torch.testing.assert_close(model(x), before)  # hooks gone: active slot 0 as before


def test_a_route_of_the_wrong_length_fails_loudly() -> None:
    model, _ = _model()
    router = SampleRouter.for_modules([model])
    with router.route(["a", "b", "c"]), pytest.raises(ValueError, match="whole multiple"):
        model(torch.randn(2, 6))
    with pytest.raises(ValueError, match="one adapter name per sample"):
        with router.route([]):
            pass


def test_more_loras_than_a_combined_adapter_holds_are_refused() -> None:
    _, layers = _model()
    mixer = AdapterMixer(layers, RANK, lambda i, key: 1.0, max_combined=2)
    with pytest.raises(TooManyLoras, match="maxCombinedLoras"):
        mixer.prepare([((0, 1.0), (1, 1.0), (2, 1.0))])
    assert mixer.combined_bytes() == 0


def test_combined_buffers_are_reused_not_grown() -> None:
    _, layers = _model()
    mixer = AdapterMixer(layers, RANK, lambda i, key: 1.0, max_combined=2)
    mixer.prepare([((0, 1.0), (1, 1.0)), ((1, 1.0), (2, 0.5))])
    allocated = mixer.combined_bytes()
    assert allocated > 0
    for _ in range(5):
        mixer.prepare([((0, 0.2), (2, 1.0)), ((0, 1.0), (1, 1.0))])
    assert mixer.combined_bytes() == allocated
    assert all(len(layer.lora_A) == 3 + 2 for layer in layers.values())  # 3 slots + 2 mixes
