"""The images, read from their Dockerfiles (no container engine runs the tests): multi-stage,
slim Python, non-root, nothing but the shared runtime, the stubs and the one service."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.support import (
    ROOT,
    Stage,
    dockerfile_stages,
    dockerignore_patterns,
    dockerignored,
    service_names,
)


@dataclass(frozen=True)
class Image:
    name: str
    dockerfile: Path
    # What its final stage copies from the build context, and the module its entry point runs.
    own_folders: tuple[str, ...]
    module: str


IMAGES = [
    *(
        Image(
            name,
            ROOT / "services" / name / "Dockerfile",
            ("services/__init__.py", "services/runtime", f"services/{name}"),
            f"services.{name}",
        )
        for name in service_names()
        if (ROOT / "services" / name / "Dockerfile").exists()
    ),
    Image(
        "gateway",
        ROOT / "gateway" / "Dockerfile",
        ("services/__init__.py", "services/runtime", "gateway"),
        "gateway",
    ),
]
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|pip|gcc|g\+\+|make|build-essential|cc|git|curl|wget)\b")


def final_stage(image: Image) -> Stage:
    return dockerfile_stages(image.dockerfile)[-1]


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_every_image_is_built_in_stages_on_slim_python(image: Image) -> None:
    stages = dockerfile_stages(image.dockerfile)
    assert len(stages) >= 2, "a build stage installs, the final stage only copies"
    for stage in stages:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base), stage.base


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_the_final_stage_runs_as_a_user_that_is_not_root(image: Image) -> None:
    users = [argument for keyword, argument in final_stage(image).instructions if keyword == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) >= 10000, (
        f"USER {users[-1]}: a numeric uid, so that Kubernetes' runAsNonRoot can check it"
    )


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_the_final_stage_has_no_build_tools_and_no_healthcheck(image: Image) -> None:
    for keyword, argument in final_stage(image).instructions:
        assert keyword != "HEALTHCHECK", "Kubernetes probes the containers; no HEALTHCHECK"
        if keyword == "RUN":
            for command in re.split(r"&&|;", argument):
                tools = BUILD_TOOLS.findall(command)
                # Taking pip out of the image is the one use of pip allowed here.
                assert not tools or "uninstall" in command, (
                    f"build tools in the final stage: {command.strip()}"
                )
    all_stages = dockerfile_stages(image.dockerfile)
    assert not any(keyword == "HEALTHCHECK" for stage in all_stages for keyword, _ in stage.instructions)


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_the_final_stage_copies_the_runtime_the_stubs_and_its_own_code_only(image: Image) -> None:
    stages = dockerfile_stages(image.dockerfile)
    build = stages[0].name
    copied: list[str] = []
    for keyword, argument in final_stage(image).instructions:
        if keyword not in {"COPY", "ADD"}:
            continue
        assert keyword == "COPY", "ADD fetches and unpacks; COPY is all an image needs"
        words = argument.split()
        options = [w for w in words if w.startswith("--")]
        sources = [w for w in words if not w.startswith("--")][:-1]
        if f"--from={build}" in options:
            # The virtualenv holds the dependencies and the stubs (asan-contracts), no suite code.
            assert sources == ["/opt/venv"], sources
            continue
        assert not options, options
        copied += sources
    assert sorted(copied) == sorted(image.own_folders)


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_the_build_stage_installs_run_time_dependencies_and_the_stubs_without_the_suite(image: Image) -> None:
    build = dockerfile_stages(image.dockerfile)[0]
    runs = " ".join(argument for keyword, argument in build.instructions if keyword == "RUN")
    assert "-c constraints.txt" in runs, "pinned by constraints.txt"
    assert "./protos" in runs, "the generated stubs, as the asan-contracts package"
    assert "[dev]" not in runs, "no dev extras in an image"
    assert re.search(r"uninstall -y asan-suite", runs), "the suite's own (empty) wheel is removed"
    copied = [argument for keyword, argument in build.instructions if keyword == "COPY"]
    assert not any("services" in c or "gateway" in c for c in copied), (
        "code reaches the image in the final stage only"
    )


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_the_entry_point_runs_the_module(image: Image) -> None:
    entrypoints = [a for k, a in final_stage(image).instructions if k == "ENTRYPOINT"]
    assert entrypoints == [f'["python", "-m", "{image.module}"]']


def test_every_service_has_an_image() -> None:
    missing = [name for name in service_names() if not (ROOT / "services" / name / "Dockerfile").exists()]
    assert not missing, f"services without a Dockerfile (copy payment's): {missing}"


def test_the_build_context_holds_what_the_images_copy_and_nothing_private() -> None:
    patterns = dockerignore_patterns()
    for image in IMAGES:
        for copied in (
            *image.own_folders,
            "pyproject.toml",
            "constraints.txt",
            "protos/pyproject.toml",
            "protos/python",
        ):
            path = ROOT / copied
            files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                if "__pycache__" in relative or ".egg-info" in relative or file.name == "Dockerfile":
                    continue
                assert not dockerignored(relative, patterns), f"{relative} is needed by {image.name}'s image"
    for private in (
        ".venv/bin/python",
        "var/keys/auth_private.pem",
        ".git/config",
        "tests/conftest.py",
        "node_modules/x",
        "services/payment/__pycache__/x.pyc",
        "deploy/k8s/RUNBOOK.md",
    ):
        assert dockerignored(private, patterns), f"{private} must stay out of the build context"


def _runtime_distributions() -> set[str]:
    """The distributions an image's virtualenv gets: pyproject's run-time dependencies (not the
    dev extras), the stubs package, and everything they require, as installed here."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pending = [Requirement(r) for r in project["dependencies"]]
    found: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for line in requires:
            nested = Requirement(line)
            environments = [{"extra": extra} for extra in requirement.extras] or [{"extra": ""}]
            if nested.marker is None or any(nested.marker.evaluate(env) for env in environments):
                pending.append(nested)
    return found


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_what_the_image_s_code_imports_is_a_run_time_dependency(image: Image) -> None:
    import ast
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    modules: set[str] = set()
    for folder in image.own_folders:
        for path in (ROOT / folder).rglob("*.py") if (ROOT / folder).is_dir() else [ROOT / folder]:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"services", "gateway", "asan", "__future__"}
    providers = packages_distributions()
    installed = _runtime_distributions()
    undeclared = sorted(
        module
        for module in third_party
        if not any(canonicalize_name(d) in installed for d in providers.get(module, []))
    )
    assert not undeclared, (
        f"{image.name}'s code imports {undeclared}, which pyproject.toml's [project] dependencies do not "
        "bring: the image would not start"
    )
