"""grading.handin.flow: names resolved as they stood when a cell ran, and the data-flow chain evidence shows."""
from grading.handin.cells import Cell
from grading.handin.flow import Binding, NotebookView, names_used


def view(*cells: tuple[str, int | None]) -> NotebookView:
    return NotebookView([Cell(n, "code", source, execution_count=count)
                         for n, (source, count) in enumerate(cells, start=1)])


def test_a_call_resolves_to_the_definition_in_force_when_its_cell_ran():
    v = view(("def main():\n    return 1", 1), ("main()", 2), ("def main():\n    return 2", 3), ("main()", 4))
    first, second = (v.helpers_reached("main()", v.cells[n]) for n in (1, 3))
    assert [f.cell.number for f in first] == [1] and [f.cell.number for f in second] == [3]


def test_a_redefinition_that_ran_before_the_call_wins_over_its_position():
    # cell 3's definition ran as 2, before the call (count 5); cell 1's ran last (count 9)
    v = view(("def plot():\n    pass", 9), ("plot()", 5), ("def plot():\n    return 0", 2))
    assert [f.cell.number for f in v.helpers_reached("plot()", v.cells[1])] == [3]


def test_a_tuple_target_gets_the_model_its_position_returns_and_the_others_are_its_results():
    net = ("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
           "        self.c = nn.Conv2d(3, 8, 3)\n        self.f = nn.Linear(8, 4)")
    v = view((net, 1),
             ("def train(cfg):\n    net = Net()\n    losses = fit(net)\n    return net, losses, loader", 2),
             ("m, train_loss, loader = train(cfg)", 3))
    state = v.variables_at(v.cells[2])
    assert (state["m"].kind, state["m"].is_model) == ("model1", True)
    assert (state["train_loss"].kind, state["train_loss"].is_model) == ("model1", False)
    assert state["train_loss"].chain() == 'cell 3 "..., train_loss, ... = train(...)" ← cell 2 train builds "net = Net()"'


def test_a_chain_keeps_its_latest_steps_and_its_origin():
    binding = Binding("model1", True, 1, '"model = Net()"')
    for cell in range(2, 8):
        binding = Binding("model1", True, cell, '"model = model.to(...)"', binding)
    steps = binding.chain().split(" ← ")
    assert steps[0].startswith("cell 7") and steps[-2:] == ["...", 'cell 1 "model = Net()"'] and len(steps) == 5


def test_names_used_are_not_the_words_of_strings():
    assert names_used("plt.plot(losses_ft['train'], label='Finetuned model')") == {"plt", "losses_ft"}
    assert "model" in names_used("plot(model")   # a statement that does not parse: identifiers outside strings
