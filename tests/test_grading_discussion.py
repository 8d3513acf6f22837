"""grading.handin.discussion: a comparison compares two models on something measured, sentence by sentence."""
from grading.handin.cells import Cell, Output
from grading.handin.discussion import comparisons, sentences


def notebook(*markdown: str) -> list[Cell]:
    """A code cell that shows a figure, then the markdown cells (a comparison comes after a result)."""
    figure = Cell(1, "code", "plt.plot(losses)", execution_count=1,
                  outputs=[Output("display_data", ("image/png", "text/plain"), "<Figure size 640x480 with 1 Axes>")])
    return [figure] + [Cell(n, "markdown", text) for n, text in enumerate(markdown, start=2)]


def test_an_apology_that_names_both_models_is_no_comparison():
    apology = ("Because of the hardware limitation, run for only three samples. A T4 GPU is good for model 1 "
               "however a P100 is better for the ResNet since it has more memory; the best lr was 0.00014.")
    assert comparisons(notebook(apology)) == []


def test_a_cell_naming_both_models_compares_them_in_any_of_its_sentences():
    text = ("Model 1 is our own CNN and model 2 the pretrained ResNet. The second reaches a validation accuracy "
            "of 0.95, far higher than the 0.85 of the first.")
    found = comparisons(notebook(text))
    assert len(found) == 1 and found[0].both
    assert found[0].sentence.startswith("The second reaches a validation accuracy")


def test_a_remark_about_one_model_is_a_comparison_in_passing():
    found = comparisons(notebook("## Curves", "The same happens with the ResNet model too, but its accuracy is better."))
    assert [(c.cell.number, c.both) for c in found] == [(3, False)]
    assert "ResNet model too" in found[0].sentence


def test_an_introduction_before_any_result_compares_nothing():
    intro = Cell(1, "markdown", "Model 1 (small CNN) should train faster than model 2, with a lower accuracy.")
    assert comparisons([intro] + notebook()) == []


def test_sentences_split_at_stops_semicolons_and_list_items():
    assert sentences("One. Two; three\n- four\n\nfive") == ["One.", "Two", "three", "four", "five"]
