"""The images, read from their Dockerfiles (no container engine runs the tests): multi-stage,
slim Python, non-root, nothing but the shared runtime, the stubs and the one service. Every
service's image comes from services/Dockerfile, built with that service's arguments."""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services import suite
from tests.deploy.support import (
    ROOT,
    Stage,
    built_with,
    dockerfile_stages,
    dockerignore_patterns,
    dockerignored,
    environment,
    substitute,
)

SERVICES_DOCKERFILE = ROOT / "services" / "Dockerfile"


@dataclass(frozen=True)
class Image:
    name: str
    dockerfile: Path
    # What its final stage copies from the build context, and the module its entry point runs.
    own_folders: tuple[str, ...]
    module: str
    # The --build-arg values `make images` gives it, and the ports it says it listens on.
    build_args: Mapping[str, str] = field(default_factory=dict)
    ports: frozenset[int] = frozenset()


IMAGES = [
    *(
        Image(
            definition.name,
            SERVICES_DOCKERFILE,
            ("services/__init__.py", "services/runtime", f"services/{definition.name}"),
            f"services.{definition.name}",
            suite.image_build_args(definition.name),
            frozenset({definition.grpc_port, definition.metrics_port}),
        )
        for definition in suite.definitions()
    ),
    Image(
        "gateway",
        ROOT / "gateway" / "Dockerfile",
        ("services/__init__.py", "services/runtime", "gateway"),
        "gateway",
        ports=frozenset({suite.GATEWAY_PORT, suite.GATEWAY_METRICS_PORT}),
    ),
]
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|pip|gcc|g\+\+|make|build-essential|cc|git|curl|wget)\b")


def stages(image: Image) -> list[Stage]:
    """The image's stages as its build sees them, its build arguments filled in."""
    return built_with(dockerfile_stages(image.dockerfile), image.build_args)


def final_stage(image: Image) -> Stage:
    return stages(image)[-1]


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_every_image_is_built_in_stages_on_slim_python(image: Image) -> None:
    all_stages = stages(image)
    assert len(all_stages) >= 2, "a build stage installs, the final stage only copies"
    for stage in all_stages:
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
    all_stages = stages(image)
    assert not any(keyword == "HEALTHCHECK" for stage in all_stages for keyword, _ in stage.instructions)


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_the_final_stage_copies_the_runtime_the_stubs_and_its_own_code_only(image: Image) -> None:
    build = stages(image)[0].name
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
    build = stages(image)[0]
    runs = " ".join(argument for keyword, argument in build.instructions if keyword == "RUN")
    assert "-c constraints.txt" in runs, "pinned by constraints.txt"
    assert "./protos" in runs, "the generated stubs, as the asan-contracts package"
    assert "[dev]" not in runs, "no dev extras in an image"
    assert re.search(r"uninstall -y asan-suite", runs), "the suite's own (empty) wheel is removed"
    copied = [argument for keyword, argument in build.instructions if keyword == "COPY"]
    assert not any("services" in c or "gateway" in c for c in copied), (
        "code reaches the image in the final stage only"
    )


def started_command(stage: Stage) -> list[str]:
    """What the container runs: the exec-form ENTRYPOINT and CMD, or, where the entry point is
    a shell that reads the image's variables, the command it hands over to."""
    entrypoints = [json.loads(a) for k, a in stage.instructions if k == "ENTRYPOINT"]
    commands = [json.loads(a) for k, a in stage.instructions if k == "CMD"]
    assert len(entrypoints) == 1, "one ENTRYPOINT, in exec form"
    entrypoint: list[str] = entrypoints[0]
    if entrypoint[:2] != ["/bin/sh", "-c"]:
        return [*entrypoint, *(commands[-1] if commands else [])]
    script = shlex.split(substitute(entrypoint[2], environment(stage)))
    # exec: the shell gives way, so that Python is the first process and gets SIGTERM itself.
    assert script[0] == "exec" and script[-1] == "$@", entrypoint[2]
    return [*script[1:-1], *(commands[-1] if commands else [])]


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_the_entry_point_runs_the_module(image: Image) -> None:
    command = started_command(final_stage(image))
    assert command[:3] == ["python", "-m", image.module]
    assert command[3:] in ([], ["serve"])


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_the_image_exposes_the_ports_its_process_listens_on(image: Image) -> None:
    exposed = [a for k, a in final_stage(image).instructions if k == "EXPOSE"]
    assert {int(port) for argument in exposed for port in argument.split()} == image.ports


def test_every_service_is_built_from_the_one_services_dockerfile() -> None:
    own = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "services").glob("*/Dockerfile"))
    assert not own, f"a service's image comes from services/Dockerfile, not from its own: {own}"
    assert {image.name for image in IMAGES} == {*suite.service_names(), "gateway"}
    makefile = (ROOT / "Makefile").read_text()
    assert "build -f services/Dockerfile $$build_args" in makefile
    assert "services.suite build-args $$name" in makefile


def test_a_service_s_image_cannot_be_built_without_its_name() -> None:
    """An empty SERVICE would make `COPY services/${SERVICE}` copy every service's folder."""
    final = dockerfile_stages(SERVICES_DOCKERFILE)[-1]
    copy = next(i for i, (k, a) in enumerate(final.instructions) if k == "COPY" and "SERVICE" in a)
    checks = [a for k, a in final.instructions[:copy] if k == "RUN" and 'test -n "${SERVICE}"' in a]
    assert checks and "exit 1" in checks[0]
    declared = {a.partition("=")[0] for k, a in final.instructions if k == "ARG"}
    assert declared == set(suite.image_build_args(suite.service_names()[0])), (
        "the Dockerfile's arguments are those services/suite.py gives"
    )


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
