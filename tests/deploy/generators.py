"""The generators of deploy/ (scripts, not packages) loaded as modules, so that tests call
them as `make dashboards` and `make prometheus-config` do, and reach their functions."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

from tests.deploy.support import DEPLOY

DASHBOARDS_GENERATOR = DEPLOY / "dashboards" / "generate.py"
PROMETHEUS_CONFIG_GENERATOR = DEPLOY / "prometheus" / "local_config.py"


@cache
def _script(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    # Registered first: its dataclasses look their module up while being defined.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def dashboards_generator() -> ModuleType:
    return _script(DASHBOARDS_GENERATOR, "asan_deploy_dashboards")


def prometheus_config_generator() -> ModuleType:
    return _script(PROMETHEUS_CONFIG_GENERATOR, "asan_deploy_prometheus_config")
