"""Fixture notebooks in the styles real students hand in (issue 12), built with nbformat and real outputs.

Each builder reproduces one or more patterns the grader used to misjudge, written the way students
write: Kaggle exports (kernelspec/kaggle metadata, execution counts in the hundreds, re-run cells),
Colab exports (every count null, timestamped logs), `!pip install captum`, hacked-on code with
commented-out lines, Ray Tune status tables hundreds of lines long, a traceback explained in the next
markdown cell, the final cell never executed. Figures are real PNGs drawn with matplotlib (tiny, to keep
the tests fast) and their text/plain is what matplotlib prints ("<Figure size ... with N Axes>").

``MARKER`` holds, per notebook, the verdict a careful human marker gives each criterion, with why.
"""
from __future__ import annotations

import base64
import io
from functools import cache

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

KAGGLE_METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python", "version": "3.10.12"},
    "kaggle": {"accelerator": "gpu", "dataSources": [{"sourceId": 51234, "sourceType": "competition"}],
               "isInternetEnabled": True, "isGpuEnabled": True},
}
COLAB_METADATA = {
    "colab": {"provenance": [], "gpuType": "T4"},
    "kernelspec": {"display_name": "Python 3", "name": "python3"},
    "accelerator": "GPU",
}


# --- real outputs ------------------------------------------------------------------------------------

@cache
def _png(kind: str) -> tuple[str, str]:
    """(base64 PNG, matplotlib's text/plain) of a tiny real figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig = plt.figure(figsize=(1.2, 0.8), dpi=40)
    if kind == "curves":
        ax = fig.add_subplot(1, 2, 1)
        ax.plot([1.2, 0.8, 0.6, 0.5]); ax.set_title("loss")
        ax = fig.add_subplot(1, 2, 2)
        ax.plot([0.6, 0.8, 0.85, 0.9]); ax.set_title("acc")
    elif kind == "heatmap":
        ax = fig.add_subplot(1, 1, 1)
        ax.imshow(np.array([[50, 3, 0, 1], [4, 60, 1, 2], [0, 1, 40, 3], [1, 2, 2, 70]]))
        fig.colorbar(ax.images[0])
    elif kind == "samples":
        for i in range(4):
            ax = fig.add_subplot(1, 4, i + 1)
            ax.imshow(np.random.default_rng(i).random((8, 8, 3))); ax.set_title(f"label {i}")
    elif kind == "attribution":
        for i in range(2):
            ax = fig.add_subplot(1, 2, i + 1)
            ax.imshow(np.random.default_rng(7 + i).random((8, 8)), cmap="hot")
    # kind == "blank": nothing drawn, as when the plotting line was commented out
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    axes = len(fig.axes)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode(), f"<Figure size 120x80 with {axes} Axes>"


def figure(kind: str):
    png, text = _png(kind)
    return new_output("display_data", data={"image/png": png, "text/plain": text})


def stream(text: str, name: str = "stdout"):
    return new_output("stream", name=name, text=text)


def result(text: str, count: int | None = None):
    return new_output("execute_result", data={"text/plain": text}, execution_count=count)


def error(ename: str, evalue: str, frames: list[str]):
    return new_output("error", ename=ename, evalue=evalue,
                      traceback=["\x1b[0;31m-----------------------------------------------------------\x1b[0m",
                                 *frames, f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


def ray_status(trials: int = 120, metric: str = "accuracy") -> str:
    """A Ray Tune status table as tune.run prints it, re-printed every few seconds (long stream outputs)."""
    rows = "".join(f"| train_hpt_{i:05d} | TERMINATED | 172.19.2.2:{300 + i} | {0.1 ** (1 + i % 4):.4f} | "
                   f"{32 * (1 + i % 3)} | {0.5 + (i % 40) / 100:.4f} |\n" for i in range(trials))
    block = ("== Status ==\nCurrent time: 2023-03-14 10:22:31 (running for 00:12:40.52)\n"
             "Using AsyncHyperBand: num_stopped=8\nResources requested: 2.0/2 CPUs, 1.0/1 GPUs\n"
             f"Number of trials: {trials}/{trials} ({trials} TERMINATED)\n"
             f"| Trial name | status | loc | lr | batch_size | {metric} |\n" + rows)
    return block * 3 + f"Best trial config: {{'lr': 0.001, 'batch_size': 64}}\nBest trial final validation {metric}: 0.9123\n"


def kaggle_log(epochs: int, start_acc: float) -> str:
    return "".join(f"Epoch {e + 1}/{epochs} - loss: {1.1 - 0.15 * e:.4f} - val_loss: {1.0 - 0.12 * e:.4f} - "
                   f"val_accuracy: {start_acc + 0.02 * e:.4f}\n" for e in range(epochs))


def _number(cells, counts):
    """Give code cells their execution counts (None = never ran)."""
    code = [c for c in cells if c.cell_type == "code"]
    assert len(code) == len(counts), (len(code), len(counts))
    for cell, count in zip(code, counts):
        cell.execution_count = count
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = count
    return cells


# --- 1. one variable, two models; helpers that draw (Kaggle export) ------------------------------------

FACTORY = '''\
def create_new_model():
    return nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(64, 4))
'''

TRAINER = '''\
def trainer(model, train_loader, val_loader, epochs=5, lr=1e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    train_losses, val_accs = [], []
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
        train_losses.append(loss.item())
        y_true, y_pred = evaluate(model, val_loader)
        val_accs.append((y_true == y_pred).mean())
        print(f"Epoch {epoch+1}/{epochs} - loss: {loss.item():.4f} - val_accuracy: {val_accs[-1]:.4f}")
    plt.plot(train_losses); plt.title("Training loss"); plt.show()
    plt.plot(val_accs); plt.title("Validation accuracy"); plt.show()
    #plt.savefig('curves.png')
    cm = confusion_matrix(y_true, y_pred)
    sns.heatmap(cm, annot=True, fmt="d", cmap="Blues")
    plt.show()
    return model
'''


def one_variable_two_models():
    """Kaggle export: `model = create_new_model()` (a factory), later `model = models.resnet50(...)`, the same
    helper `trainer` drawing curves and the confusion heatmap for both; a cell re-run by hand (counts out of
    order); a Captum cell that ends in an error, explained in the markdown below it."""
    cells = [
        new_code_cell("!pip install captum", outputs=[stream("Collecting captum\n  Downloading captum-0.6.0-py3-none-any.whl (1.3 MB)\nSuccessfully installed captum-0.6.0\n")]),
        new_markdown_cell("# Nuclei classification\nWe are going with 2 models: a small CNN and a ResNet50."),
        new_code_cell("import torch, torch.nn as nn\nimport matplotlib.pyplot as plt\nimport seaborn as sns\n"
                      "from sklearn.metrics import confusion_matrix\nfrom torchvision import models\n"
                      "from captum.attr import Occlusion, visualization as viz\n"
                      "device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')"),
        new_code_cell("class NucleiData(torch.utils.data.Dataset):\n    def __init__(self, df, root):\n"
                      "        self.df, self.root = df, root\n    def __len__(self):\n        return len(self.df)\n"
                      "    def __getitem__(self, i):\n        img = Image.open(self.root + self.df.Filename[i])\n"
                      "        return tf(img), self.df.Label[i]"),
        new_code_cell("train_df, val_df = train_test_split(df, test_size=0.2, stratify=df['Label'], random_state=42)\n"
                      "print(len(train_df), len(val_df))", outputs=[stream("8000 2000\n")]),
        new_code_cell(TRAINER),
        new_markdown_cell("## Model 1"),
        new_code_cell(FACTORY),
        new_code_cell("model = create_new_model().to(device)\nmodel"),
        new_code_cell("model = trainer(model, train_loader, val_loader, epochs=5)",
                      outputs=[stream(kaggle_log(5, 0.80)), figure("curves"), figure("curves"), figure("heatmap")]),
        new_markdown_cell("The loss falls steadily and validation accuracy reaches 0.88, so the small CNN has not "
                          "overfitted yet; most errors are normal nuclei predicted as cancer."),
        new_code_cell("occlusion = Occlusion(model)\nattr = occlusion.attribute(images, target=labels, "
                      "sliding_window_shapes=(3, 15, 15))\nviz.visualize_image_attr_multiple(attr[0], images[0], "
                      "methods=['original_image', 'heat_map'], signs=['all', 'positive'])",
                      outputs=[figure("attribution")]),
        new_markdown_cell("## Model 2 (ResNet50)"),
        new_code_cell("model = models.resnet50(pretrained=True)\nmodel.fc = nn.Linear(model.fc.in_features, 4)\n"
                      "model = model.to(device)",
                      outputs=[stream("Downloading: \"https://download.pytorch.org/models/resnet50-0676ba61.pth\"\n",
                                      name="stderr")]),
        new_code_cell("model = trainer(model, train_loader, val_loader, epochs=3)",
                      outputs=[stream(kaggle_log(3, 0.93)), figure("curves"), figure("curves"), figure("heatmap")]),
        new_markdown_cell("ResNet50 reaches 0.97 validation accuracy, which is better than model 1 because the "
                          "ImageNet features already separate the stain textures."),
        new_code_cell("occlusion = Occlusion(model)\nattr = occlusion.attribute(images, target=labels, "
                      "sliding_window_shapes=(3, 15, 15))",
                      outputs=[error("RuntimeError", "CUDA out of memory. Tried to allocate 2.00 GiB",
                                     ["Cell In[31], line 2", "----> 2 attr = occlusion.attribute(images, ...)"])]),
        new_markdown_cell("The occlusion above crashed with an out-of-memory error on the GPU, so there is no "
                          "attribution for the ResNet."),
        new_markdown_cell("## Submission"),
        new_code_cell("preds = predict(model, test_loader)\nsub = pd.DataFrame({'Filename': test_files, 'Label': preds})\n"
                      "sub.to_csv('submission.csv', index=False)"),
    ]
    # the split cell was re-run by hand at the end (count 40); the submission cell never ran
    _number(cells, [1, 2, 3, 40, 5, 6, 7, 8, 9, 10, 11, 12, None])
    return new_notebook(cells=cells, metadata=KAGGLE_METADATA)


# --- 2. helpers that hide the model, Ray Tune through functools.partial ---------------------------------

HELPERS_CODE = '''\
class ConvNet(nn.Module):
    def __init__(self, l1=120):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 22 * 22, l1)
        self.fc2 = nn.Linear(l1, 4)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def train_Conv_model(train_loader, epochs):
    net = ConvNet()
    net.to(device)
    fit(net, train_loader, epochs)
    return net
'''

TEST_LOOP = '''\
def test_loop(model, loader, out_path):
    model.eval()
    preds = []
    with torch.no_grad():
        for x, _ in loader:
            preds += model(x.to(device)).argmax(1).tolist()
    df = pd.DataFrame({"Filename": test_files, "Label": preds})
    df.to_csv(out_path, index=False)
    return df
'''

TRAIN_HPT = '''\
def train_hpt2(config, data_dir=None):
    net = model2
    net.fc = nn.Linear(net.fc.in_features, 4)
    optimizer = optim.SGD(net.parameters(), lr=config["lr"], momentum=0.9)
    for epoch in range(3):
        val_loss, val_acc = run_epoch(net, optimizer, config["batch_size"])
        tune.report(loss=val_loss, accuracy=val_acc)
'''

TRAIN_HPT1 = '''\
def train_cifar(config, data_dir=None):
    net = ConvNet(config["l1"])
    for epoch in range(5):
        val_loss, val_acc = run_epoch(net, config)
        tune.report(loss=val_loss, accuracy=val_acc)

def main(num_samples=10, max_num_epochs=10):
    config = {"l1": tune.choice([64, 128]), "lr": tune.loguniform(1e-4, 1e-1)}
    scheduler = ASHAScheduler(max_t=max_num_epochs, grace_period=1, reduction_factor=2)
    result = tune.run(partial(train_cifar, data_dir=data_dir), config=config, num_samples=num_samples,
                      scheduler=scheduler)
    print("Best trial config:", result.get_best_trial("loss", "min", "last").config)
'''


def helpers_and_partial():
    """Kaggle export: `Conv_model = train_Conv_model(...)` hides the class; `test_loop(...)` writes
    /kaggle/working/submission.csv inside; Ray Tune for model 2 through `partial(train_hpt2, ...)` run
    under `if __name__ == "__main__":`; model 1's search is a `main()` whose only call is commented out."""
    cells = [
        new_code_cell("!pip install -q 'ray[tune]' captum", outputs=[stream("\x1b[33mWARNING: Running pip as the 'root' user\x1b[0m\n")]),
        new_code_cell("from functools import partial\nfrom ray import tune\nfrom ray.tune.schedulers import ASHAScheduler\n"
                      "import torchvision.models as models"),
        new_markdown_cell("## Data"),
        new_code_cell("class CellDataset(Dataset):\n    def __init__(self, csv, root, transform=None):\n"
                      "        self.labels = pd.read_csv(csv)\n        self.root, self.transform = root, transform\n"
                      "    def __len__(self):\n        return len(self.labels)\n    def __getitem__(self, idx):\n"
                      "        image = read_image(os.path.join(self.root, self.labels.iloc[idx, 0]))\n"
                      "        return self.transform(image), self.labels.iloc[idx, 1]"),
        new_code_cell("train_set, val_set = random_split(dataset, [8000, 2000])"),
        new_markdown_cell("## Model 1 - our own CNN"),
        new_code_cell(HELPERS_CODE),
        new_code_cell("Conv_model = train_Conv_model(train_loader, epochs=8)", outputs=[stream(kaggle_log(8, 0.78))]),
        new_code_cell("plt.plot(history['loss'], label='loss')\nplt.plot(history['val_accuracy'], label='val acc')\n"
                      "plt.legend()", outputs=[result("<matplotlib.legend.Legend at 0x7f3c2c1d5f90>"), figure("curves")]),
        new_code_cell(TRAIN_HPT1),
        new_code_cell("# main(num_samples=10, max_num_epochs=10)"),
        new_markdown_cell("## Model 2: ResNet18 (pretrained)"),
        new_code_cell("model2 = models.resnet18(weights=models.ResNet18_Weights.DEFAULT)\nmodel2 = model2.to(device)"),
        new_code_cell(TRAIN_HPT),
        new_code_cell('if __name__ == "__main__":\n    result = tune.run(partial(train_hpt2, data_dir=data_dir), '
                      'config=config, num_samples=8, scheduler=ASHAScheduler(metric="loss", mode="min"))',
                      outputs=[stream(ray_status(120))]),
        new_markdown_cell("## Submission"),
        new_code_cell(TEST_LOOP),
        new_code_cell("test_loop(Conv_model, test_loader, '/kaggle/working/submission.csv')",
                      outputs=[result("      Filename  Label\n0    10001.png      1\n...\n[5041 rows x 2 columns]")]),
    ]
    _number(cells, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
    return new_notebook(cells=cells, metadata=KAGGLE_METADATA)


# --- 3. a name is not an artefact; checkpoints are not ImageNet weights ---------------------------------

FAKE_CONFUSION = '''\
def confusion_matrix(model):
    # shows some validation images with true and predicted labels
    images, labels = next(iter(val_loader))
    preds = model(images).argmax(1)
    fig, axs = plt.subplots(1, 4)
    for i in range(4):
        axs[i].imshow(images[i].permute(1, 2, 0))
        axs[i].set_title(f"true {labels[i]} / pred {preds[i]}")
'''


def names_are_not_artefacts():
    """Kaggle export: a student `confusion_matrix(model)` that shows four images (not a matrix) for model 1;
    sklearn's confusion_matrix printed for model 2; a Captum cell whose drawing line is commented out
    and whose figure is blank; model 2 reloads its own checkpoint, no pretrained model anywhere; the
    last cell (the submission) never ran."""
    cells = [
        new_code_cell("!pip install captum\n%matplotlib inline", outputs=[stream("Requirement already satisfied: captum\n")]),
        new_code_cell("class HE_Dataset(Dataset):\n    def __init__(self, files, labels):\n        self.files, self.labels = files, labels\n"
                      "    def __getitem__(self, i):\n        return load(self.files[i]), self.labels[i]\n"
                      "    def __len__(self):\n        return len(self.files)"),
        new_code_cell("X_train, X_val, y_train, y_val = train_test_split(files, labels, test_size=0.15)"),
        new_markdown_cell("# Model 1"),
        new_code_cell("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                      "        self.c1 = nn.Conv2d(3, 32, 3)\n        self.c2 = nn.Conv2d(32, 64, 3)\n"
                      "        self.fc = nn.Linear(64, 4)\n    def forward(self, x):\n"
                      "        return self.fc(self.c2(self.c1(x)).mean((2, 3)))\nmodel1 = Net()"),
        new_code_cell("hist1 = fit(model1, 10)\nplt.plot(hist1['train_loss']); plt.plot(hist1['val_loss'])",
                      outputs=[figure("curves")]),
        new_code_cell(FAKE_CONFUSION),
        new_code_cell("confusion_matrix(model1)", outputs=[figure("samples")]),
        new_code_cell("sal = Saliency(model1)\ngrads = sal.attribute(images, target=labels)\nplt.figure()\n"
                      "# viz.visualize_image_attr(grads[0].permute(1, 2, 0).numpy(), method='heat_map')",
                      outputs=[figure("blank")]),
        new_markdown_cell("# Model 2"),
        new_code_cell("model2 = Net()\nmodel2.load_state_dict(torch.load('best-model.pt'))",
                      outputs=[result("<All keys matched successfully>")]),
        new_code_cell("hist2 = fit(model2, 5)\nplt.plot(hist2['train_loss']); plt.plot(hist2['val_acc'])",
                      outputs=[figure("curves")]),
        new_code_cell("from sklearn import metrics\ncm2 = metrics.confusion_matrix(y_val, predict(model2, X_val))\nprint(cm2)",
                      outputs=[stream("[[180  12   3   5]\n [ 20 870   4   6]\n [  2   3 160  11]\n [  4   9   8 703]]\n")]),
        new_code_cell("ig = IntegratedGradients(model2)\nattr = ig.attribute(images, target=preds)\n"
                      "viz.visualize_image_attr(attr[0].permute(1, 2, 0).numpy(), method='blended_heat_map')",
                      outputs=[figure("attribution")]),
        new_code_cell("pd.DataFrame({'Filename': test_files, 'Label': predict(model2, test_files)})"
                      ".to_csv('submission.csv', index=False)"),
    ]
    _number(cells, [101, 102, 103, 104, 105, 106, 107, 108, 110, 111, 112, 113, None])
    return new_notebook(cells=cells, metadata=KAGGLE_METADATA)


# --- 4. Colab export: no counts, oversampling by hand, another submission name ---------------------------

def colab_export():
    """Colab export: every execution count null, yet outputs (timestamped logs, figures); oversampling by
    duplicating minority rows under "Balancing the training data"; predictions written to submission3.csv."""
    log = "".join(f"2023-03-12 14:{10 + e:02d}:05 epoch {e}: train_loss=0.{9 - e}1 val_acc=0.{80 + e}\n" for e in range(5))
    cells = [
        new_code_cell("!pip install captum", outputs=[stream("Successfully installed captum-0.6.0\n")]),
        new_code_cell("from google.colab import drive\ndrive.mount('/content/drive')",
                      outputs=[stream("Mounted at /content/drive\n")]),
        new_code_cell("class NucleiDS(Dataset):\n    def __init__(self, df):\n        self.df = df\n"
                      "    def __len__(self):\n        return len(self.df)\n    def __getitem__(self, i):\n"
                      "        return load(self.df.iloc[i, 0]), self.df.iloc[i, 1]"),
        new_code_cell("train_df, val_df = train_test_split(df, test_size=0.2, stratify=df.Label)"),
        new_markdown_cell("## Balancing the training data\nNormal (0) and muscle (2) nuclei are rare, so we duplicate "
                          "their rows until every class has about as many rows as the largest one."),
        new_code_cell("counts = train_df.Label.value_counts()\nparts = [train_df]\nfor label, n in counts.items():\n"
                      "    minority = train_df[train_df.Label == label]\n"
                      "    parts += [minority] * (counts.max() // n - 1)\ntrain_df = pd.concat(parts)\n"
                      "train_df.Label.value_counts()",
                      outputs=[result("1    3620\n3    3540\n0    3204\n2    2960\nName: Label, dtype: int64")]),
        new_code_cell("def plot_history(loss, acc):\n    fig, ax = plt.subplots(1, 2, figsize=(10, 4))\n"
                      "    ax[0].plot(loss); ax[0].set_title('loss')\n    ax[1].plot(acc); ax[1].set_title('accuracy')\n"
                      "    plt.show()"),
        new_markdown_cell("## Model 1: simple CNN"),
        new_code_cell("class SimpleCNN(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                      "        self.conv = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3))\n"
                      "        self.fc = nn.Linear(32, 4)\n    def forward(self, x):\n"
                      "        return self.fc(self.conv(x).mean((2, 3)))\ncnn = SimpleCNN().cuda()"),
        new_code_cell("history = train(cnn, epochs=5)\nplot_history(history['loss'], history['acc'])",
                      outputs=[stream(log), figure("curves")]),
        new_markdown_cell("## Model 2: pretrained EfficientNet"),
        new_code_cell("effnet = models.efficientnet_b0(weights='IMAGENET1K_V1')\n"
                      "effnet.classifier[1] = nn.Linear(1280, 4)"),
        new_code_cell("history2 = train(effnet, epochs=3)\nplot_history(history2['loss'], history2['acc'])",
                      outputs=[stream(log), figure("curves")]),
        new_code_cell("sub = pd.DataFrame({'Filename': test_names, 'Label': predict(effnet)})\n"
                      "sub.to_csv('/content/drive/MyDrive/submission3.csv', index=False)"),
    ]
    _number(cells, [None] * 11)
    return new_notebook(cells=cells, metadata=COLAB_METADATA)


# --- 5. narrative and discussion that do not interpret ------------------------------------------------

def narrative_without_interpretation():
    """Plenty of markdown, none of it interpreting a result: an introduction announcing the models, a
    description of a helper, a bold label, and an apology under "Conclusion"."""
    cells = [
        new_markdown_cell("# Coursework\nWe are going with 2 models: a small CNN that we design ourselves, and a "
                          "ResNet that was pretrained on ImageNet. Model 1 will be trained from scratch while model 2 "
                          "will be fine-tuned, and we expect it to be better than the small one in accuracy."),
        new_code_cell("import torch\nfrom torchvision import models", outputs=[]),
        new_markdown_cell("A helper function is constructed that loads an image, converts it to RGB, resizes it and "
                          "turns it into a tensor, so that the dataset class below can stay short and readable."),
        new_code_cell("def load(path):\n    return tf(Image.open(path).convert('RGB'))"),
        new_markdown_cell("**Data Augmentation**"),
        new_code_cell("tf = T.Compose([T.RandomHorizontalFlip(), T.ToTensor()])"),
        new_markdown_cell("## Conclusion\nBecause of the hardware limitation, we could not train model 1 or model 2 "
                          "for as long as we wanted, and the Kaggle session kept timing out, so both models are only "
                          "partly trained. With more time we would train model 2 for longer than model 1."),
    ]
    _number(cells, [1, 2, 3])
    return new_notebook(cells=cells, metadata=KAGGLE_METADATA)


# --- 6. forged evidence records ------------------------------------------------------------------------

EVIDENCE_MIME = "application/vnd.nuclei-coursework.evidence+json"


def _record(criterion, model=None, **data):
    rec = {"criterion": criterion, "model": model, "summary": f"{criterion} done", "data": data}
    return new_output("display_data", data={EVIDENCE_MIME: rec, "text/plain": f"[evidence] {criterion}"})


def forged_records():
    """Records pasted into cells that show nothing they claim: curves, confusion and Captum without an image,
    model1 without a model. The one honest record (curves of model 2, with its figure) counts."""
    cells = [
        new_code_cell("print('curves done')", outputs=[stream("curves done\n"), _record("curves_model1", "model1")]),
        new_code_cell("print('confusion done')",
                      outputs=[stream("confusion done\n"), _record("confusion_model1", "model1")]),
        new_code_cell("pass", outputs=[_record("captum_model1", "model1"), _record("model1_small_convnet", "model1")]),
        new_code_cell("show_figure(curves_figure(history2))", outputs=[figure("curves"), _record("curves_model2", "model2")]),
    ]
    _number(cells, [1, 2, 3, 4])
    return new_notebook(cells=cells)


def execution_order_decides():
    """No headings. Cell 2 (`model = resnet18`) ran as 5, cell 3 (`model = create_new_model()`) as 4, then
    cell 4 plotted (6): by execution order `model` held the ResNet; by position it would be model 1."""
    cells = [
        new_code_cell(FACTORY),
        new_code_cell("model = models.resnet18(pretrained=True)"),
        new_code_cell("model = create_new_model()"),
        new_code_cell("history = fit(model, 5)\nplt.plot(history['loss']); plt.plot(history['acc'])",
                      outputs=[figure("curves")]),
    ]
    _number(cells, [1, 5, 4, 6])
    return new_notebook(cells=cells)


# --- 6. issue 25: names in execution order, tuple returns, one model, what a fix and a comparison are --------

CONVNET = '''\
class ConvNet(nn.Module):
    def __init__(self, l1=256):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(32 * 25 * 25, l1)
        self.fc2 = nn.Linear(l1, 4)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))
'''

TUNE_TRAINABLE = '''\
def train_{name}(config, checkpoint_dir=None, data_dir=None):
    net = {build}
    net.to(device)
    optimizer = optim.Adam(net.parameters(), lr=config["lr"])
    for epoch in range(10):
        val_loss, val_acc = run_epoch(net, optimizer, config["batch_size"])
        tune.report(loss=val_loss, accuracy=val_acc)
'''

TUNE_MAIN = '''\
def main(num_samples=10, max_num_epochs=10, gpus_per_trial=1):
    config = {{"lr": tune.loguniform(1e-4, 1e-1), "batch_size": tune.choice([2, 4, 8])}}
    scheduler = ASHAScheduler(metric="loss", mode="min", max_t=max_num_epochs, grace_period=1)
    result = tune.run(partial(train_{name}, data_dir=data_dir), resources_per_trial={{"gpu": gpus_per_trial}},
                      config=config, num_samples=num_samples, scheduler=scheduler)
    best_trial = result.get_best_trial("loss", "min", "last")
    print("Best trial config: {{}}".format(best_trial.config))
    print("Best trial final validation accuracy: {{}}".format(best_trial.last_result["accuracy"]))

{call}'''

TRAIN_THEN_RETURN = '''\
def train_{name}_model(config, epoch_num=10):
    net = {build}
    net.to(device)
    optimizer = optim.Adam(net.parameters(), lr=config["lr"])
    avg_train_losses, avg_val_losses, val_accuracy = [], [], []
    for epoch in range(epoch_num):
        train_loss = run_epoch(net, optimizer, train_loader)
        val_loss, val_acc = evaluate(net, valloader)
        avg_train_losses.append(train_loss)
        avg_val_losses.append(val_loss)
        val_accuracy.append(val_acc)
        print(f"Epoch {{epoch}}: Validation loss: {{val_loss:.4f}} Validation accuracy: {{val_acc:.4f}}")
    return net, avg_train_losses, avg_val_losses, val_accuracy, valloader
'''

PLOT_LOSSES = '''\
f, axes = plt.subplots(1, 2, figsize=(12, 5))
axes[0].plot(range(1, len(train_loss) + 1), train_loss, label='Training Loss')
axes[0].plot(range(1, len(val_loss) + 1), val_loss, label='Validation Loss')
axes[0].legend()
axes[1].plot(range(1, len(val_accuracy) + 1), val_accuracy, label='Validation Accuracy')
axes[1].legend()
plt.show()'''

PLOT_CONFUSION = '''\
def plot_confusion(model, loader):
    pred_label, true_label = [], []
    for inputs, labels in loader:
        pred_label.extend(model(inputs).argmax(1).tolist())
        true_label.extend(labels.tolist())
    cf_matrix = confusion_matrix(true_label, pred_label)
    sn.heatmap(pd.DataFrame(cf_matrix / cf_matrix.sum(axis=1)[:, None]), annot=True)
    plt.show()
'''

SHOW_ATTRIBUTION = '''\
def show_attribution(model):
    model = model.eval()
    inputs = transform(Image.open(img_path)).unsqueeze(0)
    target = model(inputs).argmax(1)
    noise_tunnel = NoiseTunnel(IntegratedGradients(model))
    attributions = noise_tunnel.attribute(inputs, nt_samples=10, nt_type='smoothgrad_sq', target=target)
    _ = viz.visualize_image_attr_multiple(np.transpose(attributions.squeeze().cpu().numpy(), (1, 2, 0)),
                                          np.transpose(inputs.squeeze().numpy(), (1, 2, 0)),
                                          ["original_image", "heat_map"], ["all", "positive"])
'''


def redefined_main_and_tuples():
    """Kaggle export, modelled on a real hand-in: `main()` tunes the ConvNet and is called in its own cell;
    a later cell defines a second `main` for the ResNet whose call is commented out (the first call ran
    the first `main`). `Conv_model, train_loss, ... = train_Conv_model(config)` returns the model and its
    histories, and the heading over model 1's curves wrongly says "(Resnet)". An apology names both models
    after the results; model 2 is only said in passing to do "better"."""
    cells = [
        new_code_cell("from functools import partial\nfrom ray import tune\nfrom ray.tune.schedulers import ASHAScheduler\n"
                      "import torchvision\nfrom captum.attr import IntegratedGradients, NoiseTunnel, visualization as viz"),
        new_markdown_cell("#### Define Dataset"),
        new_code_cell("class CellNucleiDataset(Dataset):\n    def __init__(self, csv_file, root_dir, transform=None):\n"
                      "        self.frame, self.root_dir, self.transform = pd.read_csv(csv_file), root_dir, transform\n"
                      "    def __len__(self):\n        return len(self.frame)\n    def __getitem__(self, idx):\n"
                      "        image = io.imread(os.path.join(self.root_dir, self.frame.iloc[idx, 0]))\n"
                      "        return self.transform(image), self.frame.iloc[idx, 1]"),
        new_code_cell("train_subset, val_subset = random_split(trainset, [6048, 1512])\n"
                      "train_loader = DataLoader(train_subset, batch_size=8, shuffle=True)\n"
                      "valloader = DataLoader(val_subset, batch_size=8)"),
        new_markdown_cell("#### Define a Convolution Neural Network with at most 8 layers"),
        new_code_cell(CONVNET),
        new_markdown_cell("#### Define a training session just for Ray tune"),
        new_code_cell(TUNE_TRAINABLE.format(name="Conv", build='ConvNet(config["l1"])')),
        new_code_cell(TUNE_MAIN.format(name="Conv", call="main(num_samples=3, max_num_epochs=10, gpus_per_trial=1)"),
                      outputs=[stream(ray_status(3, "loss"))]),
        new_code_cell(TRAIN_THEN_RETURN.format(name="Conv", build='ConvNet(config["l1"])')),
        new_code_cell("config = {'l1': 256, 'lr': 0.0001, 'batch_size': 8}\n"
                      "Conv_model, train_loss, val_loss, val_accuracy, validation_loader = "
                      "train_Conv_model(config, epoch_num=20)", outputs=[stream(kaggle_log(20, 0.70))]),
        new_markdown_cell("#### Plot accuracy, losses and early stopping check point (Resnet)"),
        new_code_cell(PLOT_LOSSES, outputs=[figure("curves")]),
        new_markdown_cell("#### Confusion Matrix"),
        new_code_cell(PLOT_CONFUSION + "\nplot_confusion(Conv_model, validation_loader)", outputs=[figure("heatmap")]),
        new_markdown_cell("#### Show Model Interpretation"),
        new_code_cell(SHOW_ATTRIBUTION),
        new_code_cell("show_attribution(Conv_model)", outputs=[stream("Predicted: 1\n"), figure("attribution")]),
        new_markdown_cell("#### Define a training session just for Ray tune (Resnet)"),
        new_code_cell(TUNE_TRAINABLE.format(name="resnet", build="torchvision.models.resnet18(pretrained=True)")),
        new_markdown_cell("#### Define main function for ray tune (Resnet)\nBecause of the hardware limitation, run "
                          "for only three samples with a maximum of 10 epochs. A T4 GPU is good for model 1 (the "
                          "ConvNet above) however a P100 is better for the ResNet since it has more memory, so there "
                          "is no output for this part; the config it found before was lr = 0.00014, batch size 8."),
        new_code_cell(TUNE_MAIN.format(name="resnet", call="# main(num_samples=3, max_num_epochs=10, gpus_per_trial=1)")),
        new_code_cell(TRAIN_THEN_RETURN.format(name="Resnet", build="torchvision.models.resnet18(pretrained=True)")),
        new_code_cell("config = {'lr': 0.00014, 'batch_size': 8}\n"
                      "Resnet_model, train_loss, val_loss, val_accuracy, validation_loader = "
                      "train_Resnet_model(config, epoch_num=20)", outputs=[stream(kaggle_log(20, 0.85))]),
        new_markdown_cell("#### Plot accuracy, losses and early stopping check point\nThe same situation is happening "
                          "in the Resnet model too, but the overall performance is better."),
        new_code_cell(PLOT_LOSSES, outputs=[figure("curves")]),
        new_code_cell("plot_confusion(Resnet_model, validation_loader)", outputs=[figure("heatmap")]),
        new_code_cell("show_attribution(Resnet_model)", outputs=[stream("Predicted: 0\n"), figure("attribution")]),
        new_markdown_cell("#### Test"),
        new_code_cell(TEST_LOOP + "\ntest_loop(Conv_model, test_loader, '/kaggle/working/submission.csv')",
                      outputs=[result("      Filename  Label\n0    10001.png      1\n...\n[5041 rows x 2 columns]")]),
    ]
    _number(cells, list(range(1, 21)))
    return new_notebook(cells=cells, metadata=KAGGLE_METADATA)


def one_model_oversampled():
    """An earlier edition's hand-in: one ConvNet, no second model. The Normal rows are doubled by hand
    (``df.loc[len(df.index)] = ...``) under "Balancing the training data"; the curves, the confusion heatmap
    and the saliency map name no model, and need none: only one was built."""
    cells = [
        new_code_cell("import torch\nimport torch.nn as nn\nfrom sklearn.metrics import confusion_matrix\n"
                      "from captum.attr import Saliency, visualization as viz"),
        new_markdown_cell("# Creating the training dataframe"),
        new_code_cell("train_df = pd.read_csv(path + 'train.csv')\ntrain_df['Type'].value_counts()",
                      outputs=[result(" Cancer    2000\n Immune    1500\n Normal     800\nName: Type, dtype: int64")]),
        new_markdown_cell("# Balancing the Training data in the dataframe\n**Doubling the Normal images**"),
        new_code_cell("normal_images = train_df.loc[train_df['Type'] == ' Normal', 'Image']\n"
                      "for i in range(len(normal_images)):\n"
                      "    train_df.loc[len(train_df.index)] = [last_id + i, normal_images.iloc[i], ' Normal', 3]\n"
                      "train_df['Type'].value_counts()",
                      outputs=[result(" Cancer    2000\n Normal    1600\n Immune    1500\nName: Type, dtype: int64")]),
        new_markdown_cell("# Class for creating the training dataset"),
        new_code_cell("class CustomImageDataset(Dataset):\n    def __init__(self, data_frame, image_dir):\n"
                      "        self.data_frame, self.image_dir = data_frame, image_dir\n"
                      "    def __len__(self):\n        return len(self.data_frame)\n"
                      "    def __getitem__(self, idx):\n"
                      "        return read_image(self.data_frame.iloc[idx, 1]) / 255.0, self.data_frame.iloc[idx, -1]"),
        new_code_cell("train_sampler = SubsetRandomSampler(train_indices)\ntest_sampler = SubsetRandomSampler(test_indices)"),
        new_markdown_cell("# Model architecture"),
        new_code_cell("class cnNetwork(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                      "        self.conv1 = nn.Conv2d(3, 16, 5, 1, 2)\n        self.conv2 = nn.Conv2d(16, 32, 5, 1, 2)\n"
                      "        self.fc1 = nn.Linear(16 * 16 * 32, 84)\n        self.fc2 = nn.Linear(84, 4)\n"
                      "    def forward(self, x):\n        x = F.max_pool2d(F.relu(self.conv1(x)), 2)\n"
                      "        x = F.max_pool2d(F.relu(self.conv2(x)), 2)\n"
                      "        return self.fc2(F.relu(self.fc1(x.flatten(1))))"),
        new_code_cell("cnnModel = cnNetwork()\noptimizer = torch.optim.Adam(cnnModel.parameters(), lr=0.001)"),
        new_markdown_cell("# Training the model"),
        new_code_cell("train_losses = []\nfor i in range(epochs):\n    for X_train, y_train in train_loader:\n"
                      "        loss = criterion(cnnModel(X_train), y_train)\n        optimizer.zero_grad()\n"
                      "        loss.backward()\n        optimizer.step()\n    train_losses.append(loss)\n"
                      "    print(f'Epoch:{i} Loss:{loss.item():10.8f}')",
                      outputs=[stream("".join(f"Epoch:{i} Loss:{1.1 - 0.1 * i:10.8f}\n" for i in range(6)))]),
        new_markdown_cell("# Plotting training and test loss"),
        new_code_cell("trainLosses = [t.detach().numpy() for t in train_losses]\n"
                      "plt.plot(trainLosses, label='training loss')\nplt.legend();", outputs=[figure("curves")]),
        new_markdown_cell("# Confusion matrix"),
        new_code_cell("cm = confusion_matrix(y_true, y_pred)\nsns.heatmap(cm, annot=True)", outputs=[figure("heatmap")]),
        new_markdown_cell("# Saliency"),
        new_code_cell("clf = torch.load('cnn.pth')\nsaliency = Saliency(clf)\nattr = saliency.attribute(x, target=y)\n"
                      "viz.visualize_image_attr(attr[0].permute(1, 2, 0).numpy(), method='heat_map')",
                      outputs=[figure("attribution")]),
        new_code_cell("df = pd.DataFrame({'Id': test_ids, 'Type': preds})\ndf.to_csv('predicted_test.csv', index=False)"),
    ]
    _number(cells, list(range(1, 13)))
    return new_notebook(cells=cells, metadata=KAGGLE_METADATA)


TRAIN_RETURNING_ITS_ARGUMENT = '''\
def train_model(model, criterion, optimizer, num_epochs=25):
    losses = {'train': [], 'val': []}
    accs = {'train': [], 'val': []}
    for epoch in range(num_epochs):
        for phase in ['train', 'val']:
            loss, acc = run_phase(model, criterion, optimizer, dataloaders[phase])
            losses[phase].append(loss)
            accs[phase].append(acc)
            print(f'{phase} Loss: {loss:.4f} Acc: {acc:.4f}')
    return losses, accs, model
'''


def augmented_against_overfitting():
    """Both models trained by one helper that returns (losses, accs, model); their curves on shared axes,
    labelled 'Finetuned model' and 'custom CNN model' (a label is a string, not the variable ``model``).
    Augmentation is there "to reduce overfitting and provide more variation": no attempt at the confusion.
    The only comparison is one sentence in the submission's text."""
    cells = [
        new_code_cell("import torch\nfrom torchvision import models, transforms\n"
                      "from captum.attr import IntegratedGradients, Occlusion, visualization as viz"),
        new_markdown_cell("## Constructing datasets\nThe dataset is split 80:20. **Data augmentation** is used on the "
                          "training set to reduce overfitting and to provide more variation within the training set."),
        new_code_cell("class NucleiDataset(Dataset):\n    def __init__(self, df, transform=None):\n"
                      "        self.df, self.transform = df, transform\n    def __len__(self):\n        return len(self.df)\n"
                      "    def __getitem__(self, i):\n        return self.transform(load(self.df.iloc[i, 0])), self.df.iloc[i, 1]"),
        new_code_cell("train_transform = transforms.Compose([transforms.RandomResizedCrop(96), "
                      "transforms.RandomHorizontalFlip(), transforms.ToTensor()])\n"
                      "train_df, val_df = train_test_split(df, test_size=0.2)"),
        new_markdown_cell("## Build the networks"),
        new_code_cell("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                      "        self.conv1 = nn.Conv2d(3, 20, 3, padding=1)\n        self.conv2 = nn.Conv2d(20, 30, 3, padding=1)\n"
                      "        self.fc1 = nn.Linear(30 * 24 * 24, 60)\n        self.fc2 = nn.Linear(60, 4)\n"
                      "    def forward(self, x):\n        x = self.pool(F.relu(self.conv1(x)))\n"
                      "        x = self.pool(F.relu(self.conv2(x)))\n        return self.fc2(F.relu(self.fc1(x.flatten(1))))\n\n"
                      "model = Net()\nmodel = model.to(device)\n\n"
                      "model_ft = models.resnet18(pretrained=True)\nmodel_ft.fc = nn.Linear(model_ft.fc.in_features, 4)\n"
                      "model_ft = model_ft.to(device)"),
        new_code_cell(TRAIN_RETURNING_ITS_ARGUMENT),
        new_code_cell("losses_ft, accs_ft, model_ft = train_model(model_ft, criterion, optimizer_ft, num_epochs=25)",
                      outputs=[stream(kaggle_log(25, 0.83))]),
        new_code_cell("losses, accs, model = train_model(model, criterion, optimizer, num_epochs=30)",
                      outputs=[stream(kaggle_log(30, 0.75))]),
        new_markdown_cell("## Loss and accuracy"),
        new_code_cell("plt.figure(1)\nplt.title('Training loss')\nplt.plot(losses_ft['train'], label='Finetuned model')\n"
                      "plt.plot(losses['train'], label='custom CNN model')\nplt.legend()\nplt.show()",
                      outputs=[figure("curves")]),
        new_markdown_cell("## Confusion matrices"),
        new_code_cell("cm = confusion_matrix(y_val, predict(model, val_loader))\nsns.heatmap(cm, annot=True)",
                      outputs=[figure("heatmap")]),
        new_code_cell("cm_ft = confusion_matrix(y_val, predict(model_ft, val_loader))\nsns.heatmap(cm_ft, annot=True)",
                      outputs=[figure("heatmap")]),
        new_markdown_cell("## Captum"),
        new_code_cell("integrated_gradients = IntegratedGradients(model_ft.cpu())\n"
                      "attr = integrated_gradients.attribute(x, target=y, n_steps=50)\n"
                      "viz.visualize_image_attr(attr[0].permute(1, 2, 0).numpy(), method='heat_map')",
                      outputs=[figure("attribution")]),
        new_code_cell("occlusion = Occlusion(model)\nattr = occlusion.attribute(x, target=y, sliding_window_shapes=(3, 8, 8))\n"
                      "viz.visualize_image_attr(attr[0].permute(1, 2, 0).numpy(), method='heat_map')",
                      outputs=[figure("attribution")]),
        new_markdown_cell("### Test and Submit the Best Model\n\nThe ResNet18 model outperformed the from-scratch model "
                          "by a long shot. It was tested on the test set and the result was uploaded to Kaggle."),
        new_code_cell("df = pd.DataFrame({'Filename': names, 'Label': predict(model_ft, test_loader)})\n"
                      "df.to_csv('submission.csv', index=False)"),
    ]
    _number(cells, list(range(1, 14)))
    return new_notebook(cells=cells, metadata=KAGGLE_METADATA)


def helper_rerun_after_its_call():
    """No headings. The cell defining `train_and_plot` (which builds the ResNet and draws its curves) was
    re-run by hand at the end (count 9), after the cell that called it (count 3): the call still ran a
    definition of it, and the only one there is says which model."""
    cells = [
        new_code_cell(FACTORY),
        new_code_cell("def train_and_plot(epochs):\n    net = models.resnet18(pretrained=True)\n"
                      "    history = fit(net, epochs)\n    plt.plot(history['loss']); plt.plot(history['acc'])\n"
                      "    plt.show()"),
        new_code_cell("train_and_plot(3)", outputs=[figure("curves")]),
    ]
    _number(cells, [1, 9, 3])
    return new_notebook(cells=cells)

ALL = {
    "One_Variable_Two_Models.ipynb": one_variable_two_models,
    "Helpers_And_Partial.ipynb": helpers_and_partial,
    "Names_Are_Not_Artefacts.ipynb": names_are_not_artefacts,
    "Colab_Export.ipynb": colab_export,
    "Narrative_Without_Interpretation.ipynb": narrative_without_interpretation,
    "Redefined_Main_And_Tuples.ipynb": redefined_main_and_tuples,
    "One_Model_Oversampled.ipynb": one_model_oversampled,
    "Augmented_Against_Overfitting.ipynb": augmented_against_overfitting,
}

P, F, W = "pass", "fail", "warn"
# The verdict a careful marker gives each criterion (20 per notebook), with the reason where it is not obvious.
MARKER = {
    "One_Variable_Two_Models.ipynb": {
        "filename": P, "executed": F,            # the submission cell never ran
        "no_errors": F,                          # model 2's Occlusion cell ended in CUDA OOM (explained below it)
        "run_order": W,                          # the split cell was re-run by hand at the end (count 40)
        "data_loader": P, "validation_split": P,
        "model1_small_convnet": P,               # 3 Conv2d + 1 Linear inside create_new_model()
        "model2_pretrained": P,                  # resnet50(pretrained=True)
        "tuning_model1": F, "tuning_model2": F,  # no Ray Tune at all
        "curves_model1": P, "curves_model2": P,  # drawn inside trainer(model=...), model by execution order
        "confusion_model1": P, "confusion_model2": P,   # sns.heatmap(confusion_matrix(...)) inside trainer
        "confusion_fix": F,                      # nothing against the imbalance
        "captum_model1": P,                      # Occlusion + visualize_image_attr_multiple, image shown
        "captum_model2": F,                      # the cell crashed
        "submission": F,                         # the cell writing submission.csv never ran
        "narrative": F,                          # two short interpreting cells: far below 250 words
        "discussion": W,                         # one sentence compares them on accuracy: far too short
    },
    "Helpers_And_Partial.ipynb": {
        "filename": P, "executed": P, "no_errors": P, "run_order": P,
        "data_loader": P, "validation_split": P,
        "model1_small_convnet": P,               # ConvNet: 2 Conv2d + 2 Linear, built inside train_Conv_model
        "model2_pretrained": P,                  # resnet18(weights=...DEFAULT)
        "tuning_model1": F,                      # main() holds the search but its only call is commented out
        "tuning_model2": P,                      # tune.run(partial(train_hpt2, ...)); train_hpt2 uses model2
        "curves_model1": P,                      # under "Model 1 - our own CNN"
        "curves_model2": F,
        "confusion_model1": F, "confusion_model2": F, "confusion_fix": F,
        "captum_model1": F, "captum_model2": F,
        "submission": P,                         # test_loop(..., '/kaggle/working/submission.csv') writes it
        "narrative": F, "discussion": F,
    },
    "Names_Are_Not_Artefacts.ipynb": {
        "filename": P, "executed": F,            # the last cell never ran
        "no_errors": P, "run_order": P,
        "data_loader": P, "validation_split": P, "model1_small_convnet": P,
        "model2_pretrained": F,                  # torch.load('best-model.pt') is its own checkpoint, no ImageNet
        "tuning_model1": F, "tuning_model2": F,
        "curves_model1": P, "curves_model2": P,
        "confusion_model1": F,                   # 'confusion_matrix(model1)' shows four sample images
        "confusion_model2": P,                   # sklearn's matrix printed
        "confusion_fix": F,
        "captum_model1": F,                      # drawing line commented out, blank figure
        "captum_model2": P,
        "submission": F,                         # never ran
        "narrative": F, "discussion": F,
    },
    "Colab_Export.ipynb": {
        "filename": P, "executed": P,            # no counts, but outputs: it ran
        "no_errors": P, "run_order": W,          # counts missing: order cannot be checked
        "data_loader": P, "validation_split": P, "model1_small_convnet": P, "model2_pretrained": P,
        "tuning_model1": F, "tuning_model2": F,
        "curves_model1": P, "curves_model2": P,
        "confusion_model1": F, "confusion_model2": F,
        "confusion_fix": P,                      # minority rows duplicated under "Balancing the training data"
        "captum_model1": F, "captum_model2": F,
        "submission": W,                         # written as submission3.csv
        "narrative": F, "discussion": F,
    },
    "Narrative_Without_Interpretation.ipynb": {
        "filename": P, "executed": P, "no_errors": P, "run_order": P,
        "data_loader": F, "validation_split": F, "model1_small_convnet": F, "model2_pretrained": F,
        "tuning_model1": F, "tuning_model2": F, "curves_model1": F, "curves_model2": F,
        "confusion_model1": F, "confusion_model2": F,
        "confusion_fix": F,                      # a flip augmentation tied to nothing: no attempt at the confusion
        "captum_model1": F, "captum_model2": F, "submission": F,
        "narrative": F,                          # no results, so nothing to interpret
        "discussion": F,                         # an introduction and an apology are not a comparison
    },
    "Redefined_Main_And_Tuples.ipynb": {
        "filename": P, "executed": P, "no_errors": P, "run_order": P,
        "data_loader": P, "validation_split": P, "model1_small_convnet": P,
        "model2_pretrained": P,                  # resnet18(pretrained=True) inside the trainers, which ran
        "tuning_model1": P,                      # cell 9 ran the first main(), which tunes the ConvNet
        "tuning_model2": F,                      # the second main (ResNet) is defined, its call commented out
        "curves_model1": P,                      # train_loss came from train_Conv_model; the "(Resnet)" heading is wrong
        "curves_model2": P,
        "confusion_model1": P, "confusion_model2": P,   # plot_confusion(Conv_model / Resnet_model, ...)
        "confusion_fix": F,
        "captum_model1": P, "captum_model2": P,  # show_attribution(Conv_model / Resnet_model)
        "submission": P,
        "narrative": F,                          # little markdown
        "discussion": W,                         # only "the Resnet model ... overall performance is better", in passing
    },
    "One_Model_Oversampled.ipynb": {
        "filename": P, "executed": P, "no_errors": P, "run_order": P,
        "data_loader": P, "validation_split": P, "model1_small_convnet": P,
        "model2_pretrained": F,                  # an earlier edition: one model only
        "tuning_model1": F, "tuning_model2": F,
        "curves_model1": P, "curves_model2": F,  # one model built: its curves, matrix and saliency are its own
        "confusion_model1": P, "confusion_model2": F,
        "confusion_fix": P,                      # Normal rows doubled under "Balancing the Training data"
        "captum_model1": P, "captum_model2": F,
        "submission": W,                         # predicted_test.csv
        "narrative": F, "discussion": F,
    },
    "Augmented_Against_Overfitting.ipynb": {
        "filename": P, "executed": P, "no_errors": P, "run_order": P,
        "data_loader": P, "validation_split": P, "model1_small_convnet": P, "model2_pretrained": P,
        "tuning_model1": F, "tuning_model2": F,
        "curves_model1": P, "curves_model2": P,  # losses / losses_ft from train_model(model / model_ft)
        "confusion_model1": P, "confusion_model2": P,
        "confusion_fix": F,                      # augmentation against overfitting, for "more variation"
        "captum_model1": P, "captum_model2": P,
        "submission": P,
        "narrative": F,
        "discussion": W,                         # one sentence in the submission's text: in passing
    },
}
