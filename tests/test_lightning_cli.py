"""The ``celltrain`` command line (LightningCLI)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning_helpers import QUIET

from celltrain.lightning.cli import main

pytestmark = [
    *QUIET,
    pytest.mark.filterwarnings("ignore:LightningCLI's args parameter is intended"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:lightning.pytorch.cli"),
]
# Lightning annotates limit_*_batches as Union[float, int]: on the command line "1" becomes
# 1.0, i.e. ALL batches; "2" becomes 2.0, which Lightning reads as 2 batches.
SMALL = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=2",
    "--trainer.enable_progress_bar=false",
    "--model.init_args.steps=20",
]


def celltrain_command() -> list[str]:
    script = Path(sys.executable).with_name("celltrain")
    return [str(script)] if script.exists() else [sys.executable, "-m", "celltrain.lightning.cli"]


def run_cli(args, cwd, timeout=180):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        celltrain_command() + args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_fit_runs_end_to_end(tmp_path):
    result = run_cli(["fit", *SMALL], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (version,) = (tmp_path / "lightning_logs").iterdir()
    assert list(version.glob("events.out.tfevents.*"))
    (checkpoint,) = (version / "checkpoints").iterdir()
    assert checkpoint.name == "epoch=0-step=2.ckpt"
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["global_step"] == 2
    assert saved["hyper_parameters"]["steps"] == 20
    assert saved["state_dict"]["network.connections.input_exc.weight"].shape == (100, 64)
    config = yaml.safe_load((version / "config.yaml").read_text())
    assert config["model"]["class_path"] == "celltrain.lightning.DiehlCook"
    assert config["data"]["class_path"] == "celltrain.lightning.DigitsDataModule"


def print_config(args, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--print_config", *args])
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


def test_printed_config_is_accepted_back(tmp_path, capsys, monkeypatch):
    text = print_config([*SMALL, "--model.init_args.neurons=8"], capsys)
    config = yaml.safe_load(text)
    assert config["model"]["class_path"] == "celltrain.lightning.DiehlCook"
    assert config["model"]["init_args"]["steps"] == 20
    assert config["model"]["init_args"]["neurons"] == 8
    assert config["data"]["class_path"] == "celltrain.lightning.DigitsDataModule"
    (tmp_path / "config.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", "config.yaml", "--trainer.limit_train_batches=3"])
    (version,) = (tmp_path / "lightning_logs").iterdir()
    (checkpoint,) = (version / "checkpoints").iterdir()
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["hyper_parameters"]["neurons"] == 8  # the config file was used
    assert saved["global_step"] == 3  # the command line overrides the file


def test_ddp_local_strategy_is_accepted(capsys):
    config = yaml.safe_load(print_config(["--trainer.strategy=ddp_local"], capsys))
    assert config["trainer"]["strategy"] == "ddp_local"


def test_unknown_strategy_fails_with_a_message(tmp_path):
    result = run_cli(["fit", "--trainer.strategy=nope", *SMALL], tmp_path)
    assert result.returncode != 0
    assert "invalid strategy name" in result.stderr and "nope" in result.stderr


def test_unknown_model_class_fails_with_a_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model.class_path=celltrain.lightning.NoSuchModel"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "celltrain.lightning.NoSuchModel" in err and "no attribute 'NoSuchModel'" in err


def test_unknown_model_argument_fails_with_a_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model.init_args.no_such_rate=3"])
    assert exit_info.value.code != 0
    assert "no_such_rate" in capsys.readouterr().err


def test_bad_rule_setting_fails_with_a_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="batch_reduction"):
        main(["fit", *SMALL, "--model.init_args.batch_reduction=median"])
