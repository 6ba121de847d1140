"""serverless.yml against the code: `scf deploy` must create a function that starts and answers.

The variables the function knows are read from the code itself (handlers/**/*.py and index.py):
string arguments of calls given the environment (`_integer(env, "CONCURRENCY", ...)`,
`env.get("NAME")`, `os.environ["NAME"]`), and the upper-case names handlers/config.py and every handlers/**/settings.py spell.
Its settings are those they read: each must be in serverless.yml, set or shown.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from handlers.app import App, create
from handlers.config import ConfigError
from localcloud.package import BUILD_DIR, PYTHON_VERSION, SHIPPED
from localcloud.runner import ROOT

SERVERLESS_YML = ROOT / "serverless.yml"
SCF_PYTHON_RUNTIMES = {"Python2.7", "Python3.6", "Python3.7", "Python3.9", "Python3.10"}
# SCF sets these in every instance (the credentials from the execution role): never in the file.
SET_BY_SCF = {"TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN", "TENCENTCLOUD_REGION",
              "TENCENTCLOUD_APPID", "TENCENTCLOUD_UIN", "TENCENTCLOUD_RUNENV", "SCF_FUNCTIONNAME",
              "SCF_FUNCTIONVERSION", "SCF_NAMESPACE", "SCF_RUNTIME", "SCF_MEMORY_SIZE", "USER_CODE_ROOT"}
LOCAL_ONLY = {"COS_ENDPOINT", "SCF_ENDPOINT"}  # send requests to the local emulators: never deployed
# What a deployer puts in the `${env:NAME}` placeholders, for the start-up check.
EXAMPLES = {"CALLBACK_TOKEN": "example-token-0123456789", "ALLOWED_BUCKETS": "examplebucket-1250000000"}
PLACEHOLDER = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")


@pytest.fixture(scope="module")
def inputs() -> dict:
    document = yaml.safe_load(SERVERLESS_YML.read_text())
    assert document["component"] == "scf"
    return document["inputs"]


@pytest.fixture(scope="module")
def variables(inputs) -> dict:
    return inputs["environment"]["variables"]


def _is_environment(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id in ("env", "environ")) or \
           (isinstance(node, ast.Attribute) and node.attr == "environ")


def _string(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


SHIPPED_SOURCES = [ROOT / "index.py", *sorted((ROOT / "handlers").rglob("*.py"))]
# where the function's own settings are read: the mechanism, and each concern's settings.py
SETTINGS_SOURCES = [ROOT / "handlers" / "config.py", *sorted((ROOT / "handlers").rglob("settings.py"))]


def known_variables(sources: list[Path] = SHIPPED_SOURCES) -> set[str]:
    """Every environment variable the given code reads (the function's settings, SCF's
    variables, and those libraries honour, such as REQUESTS_CA_BUNDLE)."""
    names: set[str] = set()
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                if node.args and _is_environment(node.args[0]):  # _value(env, "NAME"), _destination(env, ...)
                    names |= {arg.value for arg in node.args[1:] if _string(arg)}
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in ("get", "pop") and _is_environment(func.value) \
                        and node.args and _string(node.args[0]):  # env.get("NAME")
                    names.add(node.args[0].value)
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "reader" \
                        and node.args and _string(node.args[0]):  # reader.integer("NAME", ...)
                    names.add(node.args[0].value)
                if isinstance(func, ast.Attribute) and func.attr == "getenv" and node.args and _string(node.args[0]):
                    names.add(node.args[0].value)
            elif isinstance(node, ast.Subscript) and _is_environment(node.value) and _string(node.slice):
                names.add(node.slice.value)
        if path.name in ("config.py", "settings.py"):  # names read through a Reader, or chosen at run time
            names |= {node.value for node in ast.walk(tree) if _string(node) and re.fullmatch(r"[A-Z0-9]+(_[A-Z0-9]+)+", node.value)}
    return {name for name in names if VARIABLE.fullmatch(name)}


def scf_environment(inputs: dict, variables: dict) -> dict[str, str]:
    """What the function sees once deployed: the file's variables, placeholders filled in as a
    deployer would, and what SCF itself sets."""
    env = {"TENCENTCLOUD_SECRETID": "AKIDexample00000000000000000000000", "TENCENTCLOUD_SECRETKEY": "example-key",
           "TENCENTCLOUD_SESSIONTOKEN": "example-session-token", "TENCENTCLOUD_REGION": inputs["region"],
           "SCF_FUNCTIONNAME": "ci-callback-verifier-dev", "SCF_NAMESPACE": "default", "SCF_FUNCTIONVERSION": "$LATEST"}
    for name, value in variables.items():
        missing = [p for p in PLACEHOLDER.findall(str(value)) if p not in EXAMPLES]
        assert not missing, f"{name}: add an example value for ${{env:{missing[0]}}} to EXAMPLES"
        env[name] = PLACEHOLDER.sub(lambda m: EXAMPLES[m.group(1)], str(value))
    return env


def started(env: dict[str, str]) -> App | ConfigError:
    app = create(env)
    if isinstance(app, App):
        app.close()
        return app.refusal or app
    return app


def test_the_variables_are_read_from_the_code():
    known = known_variables()
    assert {"CALLBACK_TOKEN", "ALLOWED_BUCKETS", "CONCURRENCY", "LOG_LEVEL", "TENCENTCLOUD_SECRETID"} <= known


def test_the_handler_is_a_function_of_the_shipped_index_py(inputs):
    module, _, function = inputs["handler"].partition(".")
    source = ROOT / f"{module}.py"
    assert source.name in SHIPPED and source.exists()
    defined = {node.name: node for node in ast.parse(source.read_text()).body if isinstance(node, ast.FunctionDef)}
    assert function in defined, f"{source.name} defines no {function}()"
    assert [arg.arg for arg in defined[function].args.args] == ["event", "context"]


def test_the_runtime_is_the_python_the_package_is_built_for(inputs):
    assert inputs["runtime"] in SCF_PYTHON_RUNTIMES
    assert inputs["runtime"] == f"Python{PYTHON_VERSION}"


def test_the_code_deployed_is_the_built_package(inputs):
    src = inputs["src"]["src"] if isinstance(inputs["src"], dict) else inputs["src"]
    assert (ROOT / src).resolve() == BUILD_DIR


def test_memory_and_timeout_are_values_scf_accepts(inputs):
    memory, timeout = inputs["memorySize"], inputs["timeout"]
    assert memory == 64 or (memory % 128 == 0 and 128 <= memory <= 3072)
    assert 1 <= timeout <= 900


def test_the_function_url_answers_callers_synchronously(inputs):
    assert inputs.get("asyncRunEnable", False) is False  # async-run functions cannot answer CI
    triggers = [next(iter(event)) for event in inputs["events"]]
    assert "apigw" not in triggers  # API Gateway was shut down in 2025
    (http,) = [event["http"]["parameters"] for event in inputs["events"] if "http" in event]
    assert http["authType"] == "NONE" and http["qualifier"] == "$DEFAULT"
    assert http["netConfig"]["enableExtranet"] is True  # CI calls from outside the VPC


def test_every_variable_set_is_one_the_function_reads(variables):
    assert not set(variables) & SET_BY_SCF, "SCF sets these itself (from the execution role)"
    assert not set(variables) & LOCAL_ONLY, "these send requests to the local emulators"
    unknown = set(variables) - known_variables()
    assert not unknown, f"no code reads {sorted(unknown)}"


def test_every_value_is_a_string(variables):
    """YAML reads 16 as a number and `on` as true; SCF's variables are strings: quote them."""
    assert {name: value for name, value in variables.items() if not isinstance(value, str)} == {}


def test_every_setting_is_set_or_shown_commented():
    text = SERVERLESS_YML.read_text()
    listed = set(re.findall(r"^\s*#?\s*([A-Z][A-Z0-9_]*):", text, re.MULTILINE))
    settings = known_variables(SETTINGS_SOURCES) - SET_BY_SCF - LOCAL_ONLY
    assert not settings - listed, f"add these settings to serverless.yml: {sorted(settings - listed)}"


def test_the_environment_it_sets_starts_the_function(inputs, variables):
    """Every variable without which the function refuses every callback is set (required
    ones come from the deployer's environment), and every value set is valid."""
    result = started(scf_environment(inputs, variables))
    assert isinstance(result, App), f"the deployed function would answer 500: {result}"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_placeholder_names_a_required_setting(inputs, variables, name):
    env = scf_environment(inputs, variables)
    del env[name]
    result = started(env)
    assert isinstance(result, ConfigError) and result.variable == name
