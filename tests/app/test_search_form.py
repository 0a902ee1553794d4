"""The configuration form keeps a config's [search] section: Save writes it back unchanged."""

from app.panels.config_panel import ConfigPanel
from engine.config import RunConfig

TEXT = '''
[data]
dataset = "iris"
[model]
arch = "mlp"
[search]
objective = "val_loss"
direction = "minimize"
n_trials = 12
[search.space]
"optim.lr" = { low = 1e-5, high = 0.1, log = true }
"model.hidden" = { choices = [[64], [128, 64]] }
'''


def test_saving_the_form_keeps_the_search_section(qtbot):
    cfg = RunConfig.from_toml(TEXT)
    panel = ConfigPanel(cfg)
    qtbot.addWidget(panel)
    panel.set_value("optim.weight_decay", 0.05)  # an edit in the form
    saved = RunConfig.from_toml(panel.config().to_toml(changes_only=True))
    assert saved.search == cfg.search
    assert saved.optim.weight_decay == 0.05
