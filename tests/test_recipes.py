"""labkit.recipes: each kind's baseline is a point of its own search space, and its parts fit together."""
import inspect

import pytest
from ray.tune.search.sample import Categorical, Float, Integer

from labkit import recipes, train
from labkit.profiles import PROFILES


@pytest.mark.parametrize("pretrained", [True, False])
@pytest.mark.parametrize("profile", PROFILES.values(), ids=list(PROFILES))
@pytest.mark.parametrize("kind", recipes.KINDS)
def test_the_baseline_lies_in_the_search_space(kind, profile, pretrained):
    # every search tries the baseline first (points_to_evaluate): it must be a point of the space
    baseline = recipes.baseline_config(kind, profile, pretrained=pretrained)
    space = recipes.recipe(kind).search_space(profile, pretrained=pretrained)
    assert set(space) <= set(baseline)  # what is not searched, a trial takes from the baseline
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


@pytest.mark.parametrize("pretrained", [True, False])
@pytest.mark.parametrize("profile", PROFILES.values(), ids=list(PROFILES))
@pytest.mark.parametrize("kind", recipes.KINDS)
def test_every_searched_dimension_can_change_the_answer(kind, profile, pretrained):
    # two or three hyperparameters, none with a single value; a sampled range spans at least a factor of 10
    # on a log scale (a rate's effect is about ratios)
    space = recipes.recipe(kind).search_space(profile, pretrained=pretrained)
    assert 2 <= len(space) <= 3
    for name, domain in space.items():
        if isinstance(domain, Categorical):
            assert len(set(domain.categories)) >= 2, name
        else:
            assert domain.upper > domain.lower, name
            if recipes.is_log_scale(domain):
                assert domain.upper / domain.lower >= 10, name
    if kind == "model2":  # frozen random stages compute nothing useful: only pretrained ones are a choice
        assert ("unfrozen_stages" in space) == pretrained
