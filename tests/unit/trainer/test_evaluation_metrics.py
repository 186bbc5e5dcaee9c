"""The paper's metrics on hand-made embeddings: the math, before any model is involved."""

from __future__ import annotations

import math

import pytest
import torch

from tuneforge_trainer.evaluation.metrics import prompt_fidelity, subject_fidelity


def test_identical_images_score_one():
    embeddings = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    # Every generated image is one of the real ones: pairs with itself score 1, cross pairs less.
    same = torch.tensor([[1.0, 2.0, 3.0]])
    assert subject_fidelity(same, same * 7) == pytest.approx(1.0)
    cross = float(torch.nn.functional.cosine_similarity(embeddings[0], embeddings[1], dim=0))
    assert subject_fidelity(embeddings, embeddings) == pytest.approx((2 + 2 * cross) / 4)


def test_subject_fidelity_is_the_mean_over_every_generated_real_pair():
    generated = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    real = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    # cosines: row 1 -> 1, 1/sqrt2, -1 ; row 2 -> 0, 1/sqrt2, 0
    expected = (1 + 1 / math.sqrt(2) - 1 + 0 + 1 / math.sqrt(2) + 0) / 6
    assert subject_fidelity(generated, real) == pytest.approx(expected)


def test_opposite_and_orthogonal_embeddings():
    assert subject_fidelity(torch.tensor([[1.0, 1.0]]), torch.tensor([[-2.0, -2.0]])) == (
        pytest.approx(-1.0)
    )
    assert subject_fidelity(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])) == (
        pytest.approx(0.0)
    )


def test_prompt_fidelity_pairs_each_image_with_its_own_prompt():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    # image 0 matches its prompt (1.0); image 1 is orthogonal to its prompt (0.0).
    assert prompt_fidelity(images, texts) == pytest.approx(0.5)
    assert prompt_fidelity(images, images.flip(0)) == pytest.approx(0.0)


def test_bad_shapes_and_zero_vectors_are_refused():
    with pytest.raises(ValueError, match="embedding sizes differ"):
        subject_fidelity(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="pairs each image with its prompt"):
        prompt_fidelity(torch.ones(2, 3), torch.ones(3, 3))
    with pytest.raises(ValueError, match="all zeros"):
        subject_fidelity(torch.zeros(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError, match="non-empty"):
        subject_fidelity(torch.ones(0, 3), torch.ones(1, 3))
