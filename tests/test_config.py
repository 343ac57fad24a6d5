"""The sweep config: defaults, normalisation, and one-line rejections of bad configs.

Every bad config is rejected by gradlab.config.normalise (what the Snakefile and the
``gradlab sweep-*`` commands call) with a message naming the key, the bad value and what is
allowed; a few go through the CLI and through Snakemake itself (see test_workflow.py for the
"no results file" check).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gradlab.bugs import CATALOGUE
from gradlab.config import (
    ConfigError,
    digest,
    dumps,
    normalise,
    source_hash,
)
from gradlab.vocab import eps_label, parse_eps_label

ROOT = Path(__file__).resolve().parents[1]

BROKEN = "import numpy as np\ndef init(seed:\n"
NO_GRADIENTS = "def init(seed):\n    return {'w': [1.0]}, None, None\ndef cost(p, X, Y):\n" \
               "    return 0.0\n"
RAISES_ON_IMPORT = "raise RuntimeError('cannot find my weights')\n"
EXITS_ON_IMPORT = "import os\nos._exit(3)\n"
HANGS_ON_IMPORT = "import time\nwhile True:\n    time.sleep(0.05)\n"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "no_gradients.py").write_text(NO_GRADIENTS)
    (tmp_path / "raises.py").write_text(RAISES_ON_IMPORT)
    (tmp_path / "exits.py").write_text(EXITS_ON_IMPORT)
    (tmp_path / "hangs.py").write_text(HANGS_ON_IMPORT)
    (tmp_path / "ok.py").write_text((ROOT / "examples" / "my_model.py").read_text())
    return tmp_path


def mlp(**kw):
    return {"models": [{"kind": "mlp", **kw}]}


# (config, fragments the one-line message must contain: key, bad value, what is allowed)
BAD = [
    ({"mutations": {"kinds": ["scal"]}}, ["mutations.kinds[0]", "'scal'", "did you mean "
                                           "'scale'", "allowed: scale"]),
    ({"mutations": {"sizes": [0.5, 2.0]}}, ["mutations.sizes[1]", "2.0", "0 < size < 1"]),
    ({"mutations": {"sizes": [1e-3, "1e-3"]}}, ["mutations.sizes[1]", "listed twice",
                                                   "list each size once"]),
    ({"mutations": {"seeds": 0}}, ["mutations.seeds", "0 is not allowed", ">= 1"]),
    ({"mutations": {"size": [1e-3]}}, ["mutations.size", "did you mean 'sizes'",
      "allowed keys of mutations: kinds, sizes, seeds"]),
    ({"mutations": [1e-3]}, ["'mutations'", "not a mapping", "kinds"]),
    ({"models": [{"kind": "mlp", "localise": "some"}]}, ["models[0].localise", "'some'",
                                                          "auto, failing, all, none"]),
    ({"sedes": [0]}, ["'sedes'", "did you mean 'seeds'", "allowed keys: models"]),
    ({"epsilons": ["abc"]}, ["epsilons[0]", "'abc'", "1.0e-7"]),
    ({"epsilons": [-1e-3]}, ["epsilons[0]", "-0.001", "must be > 0"]),
    ({"epsilons": [0]}, ["epsilons[0]", "0 is not allowed", "positive step"]),
    ({"epsilons": ["-1e-3"]}, ["epsilons[0]", "'-1e-3'", "must be > 0"]),
    ({"epsilons": [".inf"]}, ["epsilons[0]", "'.inf'", "positive step"]),
    ({"epsilons": []}, ["'epsilons'", "empty", "1.0e-3"]),
    ({"epsilons": [1e-3, 0.001]}, ["epsilons[1]", "0.001", "listed twice"]),
    ({"epsilons": [1e-3, "1e-3"]}, ["epsilons[1]", "'1e-3'", "listed twice"]),
    ({"epsilons": 0.001}, ["'epsilons'", "0.001", "not a list"]),
    ({"seeds": []}, ["'seeds'", "empty", "0, 1, 2"]),
    ({"seeds": [1, 2, 1]}, ["seeds[2]", "seed 1 is listed twice", "list each seed once"]),
    ({"seeds": [-1]}, ["seeds[0]", "-1", ">= 0"]),
    ({"seeds": [1.5]}, ["seeds[0]", "1.5", "whole numbers"]),
    ({"seeds": ["a"]}, ["seeds[0]", "'a'", "whole numbers"]),
    ({"seeds": [True]}, ["seeds[0]", "true", "whole numbers"]),
    ({"variants": ["sign-flp"]}, ["variants[0]", "'sign-flp'", "did you mean 'sign-flip'",
                                  "allowed: correct"]),
    ({"variants": "none"}, ["'variants'", "'none'", "not a list"]),
    ({"methods": ["backward"]}, ["methods[0]", "'backward'", "allowed: forward, central"]),
    ({"methods": ["central", "central"]}, ["methods[1]", "'central'", "listed twice"]),
    ({"dtypes": ["float16"]}, ["dtypes[0]", "'float16'", "allowed: float32, float64"]),
    ({"models": [{"kind": "cnn"}]}, ["models[0].kind", "'cnn'", "allowed: seed-net, mlp"]),
    ({"models": [{"name": "x"}]}, ["models[0].kind", "missing", "seed-net, mlp"]),
    ({"models": []}, ["'models'", "empty", "give at least one value"]),
    ({"models": ["mlp"]}, ["models[0]", "'mlp'", "not a mapping"]),
    (mlp(keepprob=0.5), ["models[0].keepprob", "did you mean 'keep_prob'", "allowed keys"]),
    (mlp(keep_prob=1.5), ["models[0].keep_prob", "1.5", "outside (0, 1]"]),
    (mlp(keep_prob=0), ["models[0].keep_prob", "0", "outside (0, 1]"]),
    (mlp(dims=[4, 0, 1]), ["models[0].dims", "[4, 0, 1]", "impossible", "ending in 1"]),
    (mlp(dims=[4, 5, 2]), ["models[0].dims", "[4, 5, 2]", "impossible", "e.g. [4, 5, 3, 1]"]),
    (mlp(dims=[4]), ["models[0].dims", "[4]", "at least two"]),
    (mlp(dims=[4000, 4000, 1]), ["models[0].dims", "more than 100000 parameters",
                                     "use smaller layers"]),
    (mlp(examples=0), ["models[0].examples", "0", "from 1 to 100000"]),
    (mlp(**{"lambda": -1}), ["models[0].lambda", "-1", ">= 0"]),
    (mlp(**{"lambda": "lots"}), ["models[0].lambda", "'lots'", "not a number"]),
    ({"models": [{"kind": "seed-net", "dims": [4, 1]}]},
     ["models[0].dims", "does not apply to kind 'seed-net'", "takes: name, kind, lambda"]),
    ({"models": [{"kind": "mlp", "name": "a"}, {"kind": "seed-net", "name": "a"}]},
     ["models[1].name", "'a'", "must be unique"]),
    ({"models": [{"kind": "mlp", "name": "a\nb"}]}, ["models[0].name",
     "1 to 80 characters without control characters"]),
    ({"models": [{"kind": "file"}]}, ["models[0].path", "missing", ".py file"]),
    ({"models": [{"kind": "file", "path": "nope.py"}]},
     ["models[0].path", "'nope.py'", "does not exist", ".py file"]),
    ({"models": [{"kind": "file", "path": "broken.py"}]},
     ["models[0].path", "broken.py", "failed to import: SyntaxError"]),
    ({"models": [{"kind": "file", "path": "raises.py"}]},
     ["models[0].path", "raises.py", "RuntimeError: cannot find my weights"]),
    ({"models": [{"kind": "file", "path": "no_gradients.py"}]},
     ["models[0].path", "no_gradients.py", "does not define gradients()"]),
    ({"models": [{"kind": "file", "path": "exits.py"}]},
     ["models[0].path", "exits.py: os._exit(3) during import"]),
    ({"models": [{"kind": "file", "path": "hangs.py"}], "limits": {"seconds_per_check": 1}},
     ["models[0].path", "hangs.py: the import did not finish within 1 s"]),
    ({"limits": {"seconds_per_check": 0}}, ["limits.seconds_per_check", "0 is not allowed",
                                            "a number > 0"]),
    ({"limits": {"seconds_per_check": "soon"}}, ["limits.seconds_per_check", "'soon'",
                                                 "not a number"]),
    ({"limits": {"memory_mb": 0}}, ["limits.memory_mb", "0 is not allowed", "whole number > 0"]),
    ({"limits": {"memory_mb": 1.5}}, ["limits.memory_mb", "1.5", "not an integer", "null"]),
    ({"limits": {"timeout": 3}}, ["limits.timeout",
                                  "allowed keys of limits: seconds_per_check, memory_mb"]),
    ({"limits": 600}, ["'limits'", "600", "not a mapping", "seconds_per_check"]),
    ({"dtypes": ["float32"]}, ["'dtypes'", "float32", "add float64"]),
    ({"verdict": {"threshold": -1}}, ["verdict.threshold", "-1", "positive number"]),
    ({"verdict": {"treshold": 1e-7}}, ["verdict.treshold", "did you mean 'threshold'",
      "allowed keys of verdict: threshold"]),
    ({"verdict": 3}, ["'verdict'", "3", "not a mapping"]),
    ({"report": {"title": ""}}, ["report.title", "''", "1 to 200 characters"]),
    ({"report": {"titel": "x"}}, ["report.titel", "did you mean 'title'",
                                  "allowed keys of report: title"]),
    ([1, 2], ["config", "not a mapping", "models"]),
]


@pytest.mark.parametrize("raw, fragments", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_config_is_rejected_with_a_clear_message(raw, fragments, files, monkeypatch):
    monkeypatch.chdir(files)
    if isinstance(raw, dict) and "models" not in raw:
        raw = raw | {"models": [{"kind": "seed-net"}, {"kind": "file", "path": "ok.py"}]}
    with pytest.raises(ConfigError) as err:
        normalise(raw)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("config")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_defaults_are_the_documented_grid(monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = normalise({})
    assert cfg["seeds"] == list(range(10))
    assert cfg["methods"] == ["forward", "central", "five-point", "complex-step"]
    assert [eps_label(e) for e in cfg["epsilons"]] == [f"1e-{k:02d}" for k in range(1, 13)]
    assert cfg["dtypes"] == ["float64"]
    assert cfg["variants"] == sorted(CATALOGUE)
    assert cfg["verdict"] == {"threshold": None}
    assert cfg["limits"] == {"seconds_per_check": 600.0, "memory_mb": None}
    kinds = {m["kind"] for m in cfg["models"]}
    assert {"seed-net", "mlp", "file"} <= kinds
    assert any(m["kind"] == "mlp" and m["keep_prob"] < 1 and m["lambda"] > 0
               for m in cfg["models"])


def _shipped_config() -> str:
    """config/config.yaml as committed (the user's edits to the working copy do not count)."""
    out = subprocess.run(["git", "show", "HEAD:config/config.yaml"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    if out.returncode != 0:
        pytest.skip("not a git checkout: the shipped config cannot be told from an edited one")
    return out.stdout


def test_shipped_config_equals_the_defaults(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert normalise(yaml.safe_load(_shipped_config())) == normalise({})


def test_yaml_text_numbers_mean_the_numbers(monkeypatch):
    monkeypatch.chdir(ROOT)
    raw = yaml.safe_load("epsilons: [1e-3, 1.0e-5, auto]\nverdict: {threshold: 2e-7}\n"
                         "seeds: '[3, 1]'\nmodels: [{kind: mlp, keep_prob: 5e-1}]\n")
    assert raw["epsilons"][0] == "1e-3"  # the YAML 1.1 trap this guards against
    cfg = normalise(raw)
    assert cfg["epsilons"] == [1e-3, 1e-5, "auto"]
    assert cfg["verdict"]["threshold"] == 2e-7
    assert cfg["seeds"] == [1, 3]
    assert cfg["models"][0]["keep_prob"] == 0.5


def test_normalised_form_is_stable_and_idempotent(monkeypatch):
    monkeypatch.chdir(ROOT)
    a = normalise({"seeds": [2, 0, 1], "methods": ["central", "forward"],
                   "variants": ["sign-flip", "correct"], "epsilons": [1e-7, 1e-1, "auto"]})
    b = normalise({"seeds": [1, 2, 0], "methods": ["forward", "central"],
                   "variants": ["correct", "sign-flip"], "epsilons": ["auto", 1e-1, 1e-7]})
    assert dumps(a) == dumps(b)
    assert normalise(a) == a
    assert digest(a) == digest(b)
    assert digest(a) == digest(a | {"report": {"title": "another title"}})


def test_eps_labels_round_trip():
    for eps in [1e-1, 1e-7, 1e-12, 2.5e-7, 3e-5, 0.1 + 0.2, 1.0]:
        label = eps_label(eps)
        assert parse_eps_label(label) == eps
    assert eps_label(1e-7) == "1e-07"
    assert eps_label("auto") == "auto"
    assert eps_label(2.5e-7) != eps_label(2e-7)


def test_source_hash_parts_differ_and_are_stable():
    assert source_hash("core") == source_hash("core")
    assert source_hash("core") != source_hash("report")
    with pytest.raises(ValueError):
        source_hash("everything")


@pytest.mark.parametrize("text, fragments", [
    ("sedes: [0]\n", ["config key 'sedes'", "did you mean 'seeds'"]),
    ("epsilons: [-1.0e-3]\n", ["epsilons[0]", "must be > 0"]),
    ("models: [{kind: mlp, keep_prob: 2}]\n", ["models[0].keep_prob", "outside (0, 1]"]),
    ("epsilons: [1e-3\n", ["is not valid YAML"]),
])
def test_cli_rejects_with_one_line_and_exit_2(text, fragments, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "gradlab.cli", "sweep-config", "--config",
                          str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradlab: error: "), out.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert out.stdout == ""


def test_cli_shows_the_normalised_config(tmp_path):
    config = tmp_path / "config.yaml"  # its own config: not the one a user may have edited
    config.write_text("models: [{kind: seed-net}, {kind: linear1d}]\nvariants: [correct, "
                      "sign-flip]\nseeds: [0, 1, 2]\nepsilons: [1.0e-3, 1.0e-6]\n"
                      "methods: [central]\nmutations: {kinds: [sign], seeds: 1}\n")
    out = subprocess.run([sys.executable, "-m", "gradlab.cli", "sweep-config", "--config",
                          str(config)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["groups"] == 3  # one per dtype x seed, every step inside
    # seed 0: seed-net 2 variants + linear1d 1, each + reference + sign; seeds 1, 2: 2 + 1
    assert shown["cells"] == 2 * ((2 + 2) + (1 + 2)) + 2 * 2 * (2 + 1)
    assert shown["config"]["mutations"] == {"kinds": ["sign"], "seeds": 1, "sizes": []}
