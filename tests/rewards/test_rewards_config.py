"""Reward components checked at config validation (before any model loads): user files imported, functions
looked up, one-line ConfigErrors; the answer_format default taken from the prompt config."""

import pytest

from rlvr.config import ConfigError, config_from_dict


def user_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def load(name, prompt=None, params=None):
    tree = {"reward": {"components": [{"name": name, **({"params": params} if params else {})}]}}
    if prompt:
        tree["prompt"] = prompt
    return config_from_dict(tree)


@pytest.mark.parametrize("text, message", [
    ("def a(p, c, x, m):\n    return [0.0] * len(c)\n\ndef b(p, c, x, m):\n    return 1 +\n",
     "importing {path} failed: SyntaxError: invalid syntax (line 5)"),
    ("import os\nimport no_such_module_xyz\n",
     "importing {path} failed: ModuleNotFoundError: No module named 'no_such_module_xyz' (line 2)"),
    ("raise RuntimeError('needs an API key')\n", "importing {path} failed: RuntimeError: needs an API key (line 1)"),
])
def test_reward_file_that_does_not_import_is_a_one_line_config_error(tmp_path, text, message):
    path = user_file(tmp_path, "bad_reward.py", text)
    with pytest.raises(ConfigError) as err:
        load(f"{path}:a")
    assert str(err.value) == "reward.components[0].name: " + message.format(path=path)
    assert "\n" not in str(err.value)


def test_missing_function_lists_the_functions_of_the_file(tmp_path):
    path = user_file(tmp_path, "two.py", "import os\nfrom math import sqrt\n\ndef a(p, c, x, m):\n    return []\n\n"
                                         "def b(p, c, x, m):\n    return []\n")
    with pytest.raises(ConfigError) as err:
        load(f"{path}:fn")
    assert str(err.value) == f"reward.components[0].name: {path} has no function 'fn' (functions: a, b)"
    assert load(f"{path}:b").reward.components[0].name == f"{path}:b"
