"""From examples to the loss of one micro-batch: latents (cached where valid), noise, forward."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from tuneforge_trainer.components import Components, tokenize
from tuneforge_trainer.data import Example, ExampleSource
from tuneforge_trainer.losses import prediction_target, sample_noise, sample_timesteps
from tuneforge_trainer.methods import TrainingMethod


class LatentEncoder:
    """VAE encoding; caches each image's latent distribution when its pixels never change."""

    def __init__(self, components: Components, device: torch.device, cache: bool):
        """`cache`: keep (mean, std) per image index and source."""
        self.vae = components.vae
        self.scale = float(components.vae.config.scaling_factor)
        self.device = device
        self.cache_enabled = cache
        self._cache: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def encode(
        self, examples: list[Example], source: str, generator: torch.Generator
    ) -> torch.Tensor:
        """Sampled, scaled latents for `examples`."""
        means, stds = [], []
        missing = [e for e in examples if (source, e.index) not in self._cache]
        if missing:
            pixels = torch.stack([e.pixels for e in missing]).to(self.device)
            dist = self.vae.encode(pixels).latent_dist
            fresh = {(source, e.index): (dist.mean[i], dist.std[i]) for i, e in enumerate(missing)}
        else:
            fresh = {}
        for example in examples:
            key = (source, example.index)
            mean, std = self._cache.get(key) or fresh[key]
            if self.cache_enabled:
                self._cache[key] = (mean, std)
            means.append(mean)
            stds.append(std)
        mean_t, std_t = torch.stack(means), torch.stack(stds)
        noise = torch.randn(mean_t.shape, generator=generator, dtype=mean_t.dtype).to(self.device)
        return (mean_t + std_t * noise) * self.scale


def micro_batches(
    instance: ExampleSource,
    classes: ExampleSource | None,
    batch_size: int,
    rank: int,
    world_size: int,
    skip: int,
) -> Iterator[tuple[list[Example], list[Example]]]:
    """Endless (instance examples, class examples) pairs; class list empty without priors."""
    instance_batches = instance.batches(batch_size, rank, world_size, skip)
    if classes is None:
        for batch in instance_batches:
            yield batch, []
    else:
        class_batches = classes.batches(batch_size, rank, world_size, skip)
        yield from zip(instance_batches, class_batches, strict=False)


def micro_batch_loss(
    forward: Callable[..., torch.Tensor],
    method: TrainingMethod,
    encoder: LatentEncoder,
    examples: tuple[list[Example], list[Example]],
    generator: torch.Generator,
) -> torch.Tensor:
    """Noise the latents at random timesteps, predict, and return the method's loss."""
    components = method.components
    device = encoder.device
    instance, classes = examples
    latents = encoder.encode(instance, "instance", generator)
    prompts = [e.prompt for e in instance]
    if classes:
        latents = torch.cat([latents, encoder.encode(classes, "class", generator)])
        prompts += [e.prompt for e in classes]
    noise = sample_noise(latents, method.spec.training.noise_offset, generator)
    scheduler = components.noise_scheduler
    timesteps = sample_timesteps(latents.shape[0], scheduler, generator, device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    input_ids = tokenize(components.tokenizer, prompts).to(device)
    prediction = forward(input_ids, noisy, timesteps)
    target = prediction_target(scheduler, latents, noise, timesteps)
    return method.loss(prediction, target, timesteps)
