"""labkit.recipes: each kind's baseline is a point of its own search space, and its parts fit together."""
import inspect

import pytest
from ray.tune.search.sample import Categorical, Float, Integer

from labkit import recipes, train
from labkit.profiles import PROFILES


@pytest.mark.parametrize("profile", PROFILES.values(), ids=list(PROFILES))
@pytest.mark.parametrize("kind", recipes.KINDS)
def test_the_baseline_lies_in_the_search_space(kind, profile):
    # every search tries the baseline first (points_to_evaluate): it must be a point of the space
    baseline = recipes.baseline_config(kind, profile)
    space = recipes.recipe(kind).search_space(profile)
    assert set(baseline) == set(space)
    for name, domain in space.items():
        if isinstance(domain, Categorical):
            assert baseline[name] in domain.categories, name
        elif isinstance(domain, (Float, Integer)):
            assert domain.lower <= baseline[name] <= domain.upper, name


def test_model1_recipe_builds_a_model_and_settings_that_fit_takes():
    recipe = recipes.recipe("model1")
    config = recipes.baseline_config("model1", PROFILES["quick"])
    model = recipe.make_model(config, recipe.load_base())
    settings = recipe.fit_settings(model, config)
    assert set(settings) <= set(inspect.signature(train.fit).parameters)
    assert len(model.features) == 4 * len(config["channels"].split("-"))  # conv, norm, pool, relu per block


def test_settings_are_described_in_words_and_unknown_kinds_refused():
    text = recipes.describe_settings(recipes.baseline_config("model1", PROFILES["quick"]))
    assert "AdamW" in text and "peak learning rate 0.003" in text and "dropout 0.3" in text
    with pytest.raises(ValueError, match="model3"):
        recipes.recipe("model3")


@pytest.mark.parametrize("profile", ["quick", "standard"])
def test_a_cpu_profile_searches_no_model1_size_whose_final_run_would_break_its_budget(profile):
    # a size that wins is retrained with the full budget: on a CPU it must cost about what the baseline does
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    baseline = recipes.baseline_config("model1", PROFILES[profile])

    def flops(channels):
        model = recipes.recipe("model1").make_model({**baseline, "channels": channels}, None)
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, 100, 100))
        return counter.get_total_flops()

    sizes = recipes.model1_search_space(PROFILES[profile])["channels"].categories
    assert len(sizes) >= 3   # still a search over size: smaller, the baseline's, larger
    assert all(flops(c) <= 1.5 * flops(baseline["channels"]) for c in sizes), sizes
    assert any(flops(c) > 2 * flops(baseline["channels"])
               for c in recipes.model1_search_space(PROFILES["full"])["channels"].categories)
