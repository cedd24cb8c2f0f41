"""The production deploy files, checked the way the tools that consume them would check them.

No Docker engine, no cluster and no network here, so nothing is started. Instead:

- deploy/docker-compose.yaml is parsed (PyYAML) and interpolated like Compose does with a
  filled-in deploy/.env.example; every referenced file exists, every ``${VAR}`` is documented,
  credentials only come from variables, every variable the code reads is set or documented,
  and each service's command is parsed by the real click command of the same installed
  version (dagster, dagster-webserver, dagster-daemon, mlflow), with container paths mapped
  back to the files the compose file mounts there.
- deploy/Dockerfile is parsed into instructions: COPY sources exist, the lock is installed
  with --no-deps before the package, the runtime user is not root, and the CMD is parsed by
  ``dagster code-server start``; its module is imported in a clean, container-like env.
- deploy/workspace.yaml and deploy/dagster.yaml go through Dagster's own loaders.
- deploy/helm/values.yaml is checked against a pinned key list of the Dagster chart (see
  CHART_KEYS for where it comes from and how honest it is).
- deploy/ci/github-actions.yml: every ``run:`` command exists (Makefile targets and
  variables, ``mlops-assets`` argv parsed by ``mlops_assets.operations.cli.build_parser()``,
  ``python -c``
  code compiled).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
WORKSPACE = DEPLOY / "workspace.yaml"
INSTANCE = DEPLOY / "dagster.yaml"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
WORKFLOW = DEPLOY / "ci" / "github-actions.yml"
PACKAGE = ROOT / "mlops_assets"

CODE_SERVICE, WEBSERVER, DAEMON, MLFLOW = "code-location", "webserver", "daemon", "mlflow"
DAGSTER_SERVICES = (CODE_SERVICE, WEBSERVER, DAEMON)
# Set in the code-location container no matter what .env says: without them the code
# location silently falls back to local sqlite / local folders.
REQUIRED_CODE_ENV = (
    "MLOPS_HOME",
    "DAGSTER_HOME",
    "MLFLOW_TRACKING_URI",
    "MLOPS_LAKE_URI",
    "MLOPS_LAKE_STORAGE_OPTIONS",
)
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|WEBHOOK|ACCESS_KEY|STORAGE_OPTIONS")
LOCKED_DRIVER = "psycopg2"  # requirements.lock: psycopg2-binary, no psycopg 3


# ---- helpers: the package's environment variables ---------------------------------------------
CODE_ENV_NAME = re.compile(r"^(MLOPS_|MLFLOW_|DAGSTER_PG_)[A-Z0-9_]+$|^DAGSTER_HOME$")
CODE_ENV_CALL = re.compile(
    r"""(?:os\.environ\.get|os\.getenv|EnvVar|os\.environ\[)\(?\s*["']([A-Z][A-Z0-9_]*)["']"""
)


# MLflow's own client variables: the platform bounds the HTTP ones where unset
# (registry/failures.py)
# and reads the credential ones only to mask them in messages; an operator may set them, none is
# required.
MLFLOW_CLIENT_VARS = re.compile(
    r"^MLFLOW_HTTP_[A-Z_]+$|^MLFLOW_TRACKING_(TOKEN|PASSWORD|USERNAME)$"
)
TEST_ONLY_VARS = re.compile(
    r"^MLOPS_TEST_[A-Z_]+$"
)  # crash points of the fault tests (mlops_assets/core/faults.py)


@cache
def code_env_vars() -> frozenset[str]:
    """Every variable the package reads: direct calls (``os.environ.get("X")``, ``EnvVar("X")``,
    ``os.environ["X"]``) and every string constant that is such a name (``KILL_SWITCH_ENV =
    "MLOPS_KILL_SWITCH"`` read later through the constant)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names.update(n for n in CODE_ENV_CALL.findall(text) if CODE_ENV_NAME.match(n))
        tree = ast.parse(text)
        exported = {
            e.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign)
            and any(getattr(t, "id", "") == "__all__" for t in n.targets)
            for e in getattr(n.value, "elts", [])
            if isinstance(e, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and CODE_ENV_NAME.match(node.value)
            ):
                names.add(node.value)
        names -= exported  # Python names in __all__, not environment variables
    return frozenset(
        n for n in names if not MLFLOW_CLIENT_VARS.match(n) and not TEST_ONLY_VARS.match(n)
    )


def test_the_env_var_scan_finds_what_the_code_reads():
    found = code_env_vars()
    # read directly, through EnvVar, and only through a module constant respectively
    assert {
        "MLOPS_HOME",
        "MLFLOW_TRACKING_URI",
        "MLOPS_LAKE_STORAGE_OPTIONS",
        "MLOPS_KILL_SWITCH",
        "MLOPS_GIT_SHA",
        "MLOPS_MLFLOW_ARTIFACT_ROOT",
    } <= found, sorted(found)


# ---- helpers: compose
# ------------------------------------------------------------------------------
VAR_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


@cache
def env_example() -> dict[str, str]:
    env = {}
    for n, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), (
            f".env.example:{n}: not KEY=VALUE: {line!r}"
        )
        assert key not in env, f".env.example:{n}: {key} listed twice"
        env[key] = value
    return env


def filled_env() -> dict[str, str]:
    """.env.example as an operator fills it in: every empty value gets a (fake) secret."""
    return {k: v or f"fake-{k.lower().replace('_', '-')}" for k, v in env_example().items()}


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation of one parsed value: ``$$``, ``${V}``, ``${V:-d}``, ``${V-d}``,
    ``${V:?e}``, ``${V?e}``, ``${V:+a}``, ``${V+a}``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        name, op, arg = m["name"], m["op"], m["arg"] or ""
        val = env.get(name)
        if op in (":?", "?") and (val is None or (op == ":?" and val == "")):
            raise ValueError(f"required variable {name} is missing: {arg}")
        if op == ":-":
            return val or arg
        if op == "-":
            return arg if val is None else val
        if op == ":+":
            return arg if val else ""
        if op == "+":
            return "" if val is None else arg
        return val or ""

    return "$".join(VAR_REF.sub(one, part) for part in value.split("$$"))


@cache
def compose_raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@cache
def compose() -> dict:
    """The compose model after interpolation with a filled-in .env (what `docker compose config`
    shows).
    """
    return interpolate(compose_raw(), filled_env())


def services() -> dict[str, dict]:
    return compose()["services"]


def service_env(name: str, model: dict | None = None) -> dict[str, str]:
    env = ((model or compose())["services"][name]).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def volume_specs(svc: dict) -> list[tuple[str, str, str]]:
    """(type, source, target) of each mount, short or long syntax."""
    out = []
    for vol in svc.get("volumes") or []:
        if isinstance(vol, dict):
            out.append((vol["type"], vol.get("source", ""), vol["target"]))
            continue
        parts = vol.split(":")
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        out.append((kind, source, target))
    return out


def bind_map(svc: dict) -> dict[str, Path]:
    """Container path -> host path of each bind mount (relative to the compose file's folder)."""
    return {
        target: (DEPLOY / source).resolve()
        for kind, source, target in volume_specs(svc)
        if kind == "bind"
    }


def service_command(name: str) -> list[str]:
    svc = services()[name]
    cmd = svc.get("command")
    if cmd is None:  # the image's CMD
        build = svc.get("build") or services()[CODE_SERVICE]["build"]
        return dockerfile_stage_cmd(build.get("target"))
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


# ---- helpers: click commands of the installed tools --------------------------------------------
def entry_point(prog: str):
    import click

    if prog == "dagster":
        from dagster._cli import cli
    elif prog == "dagster-webserver":
        from dagster_webserver.cli import cli
    elif prog == "dagster-daemon":
        from dagster._daemon.cli import cli
    else:
        raise AssertionError(f"no click entry point known for {prog!r}")
    assert isinstance(cli, click.Command)
    return cli


def click_parse(argv: list[str], path_map: dict[str, Path] | None = None) -> tuple[str, dict]:
    """Parse ``argv`` with the tool's own click command, as its entry point would (no invoke).
    Container paths in ``path_map`` are replaced by the host files mounted there first, so
    `click.Path(exists=True)` checks the real file. Returns (command path, params)."""
    import click

    argv = [str(path_map.get(a, a)) if path_map else a for a in argv]
    cmd, args, names = entry_point(argv[0]), argv[1:], [argv[0]]
    while isinstance(cmd, click.Group):
        assert args and args[0] in cmd.commands, f"{' '.join(names)}: no subcommand {args[:1]}"
        cmd, names = cmd.commands[args[0]], names + [args[0]]
        args = args[1:]
    try:
        ctx = cmd.make_context(" ".join(names), list(args))
    except click.exceptions.ClickException as err:
        raise AssertionError(f"{' '.join(argv)}: {err.format_message()}") from None
    return " ".join(names), ctx.params


# ---- helpers: Dockerfile
# ------------------------------------------------------------------------------
@cache
def dockerfile_instructions() -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        instruction, _, args = buf.partition(" ")
        out.append((instruction.upper(), args.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a line continuation"
    return tuple(out)


@cache
def dockerfile_stages() -> dict[str, dict]:
    """name -> {"base", "parent" (an earlier stage or None), "instructions"} in file order."""
    stages: dict[str, dict] = {}
    current = None
    for instruction, args in dockerfile_instructions():
        if instruction == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert m, f"FROM {args}"
            base, name = m[1], m[2] or f"stage{len(stages)}"
            current = stages[name] = {
                "base": base,
                "parent": base if base in stages else None,
                "instructions": [],
            }
        else:
            assert current is not None or instruction in ("ARG",), f"{instruction} before FROM"
            if current is not None:
                current["instructions"].append((instruction, args))
    return stages


def stage_chain(name: str) -> list[tuple[str, str]]:
    """Instructions in effect for a stage: its parents' first."""
    stage = dockerfile_stages()[name]
    inherited = stage_chain(stage["parent"]) if stage["parent"] else []
    return inherited + stage["instructions"]


def stage_of(target: str | None) -> str:
    return target or list(dockerfile_stages())[-1]


def dockerfile_stage_cmd(target: str | None) -> list[str]:
    cmds = [args for ins, args in stage_chain(stage_of(target)) if ins == "CMD"]
    assert cmds, f"stage {stage_of(target)} has no CMD"
    cmd = json.loads(cmds[-1])  # exec form: no shell between the signal and the process
    assert isinstance(cmd, list) and all(isinstance(c, str) for c in cmd), cmds[-1]
    return cmd


def dockerfile_env(target: str | None) -> dict[str, str]:
    env = {}
    for ins, args in stage_chain(stage_of(target)):
        if ins == "ENV":
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def modules(params: dict) -> list[str]:
    """-m values of a parsed dagster command (one string or, for multi-value options, a tuple)."""
    value = params.get("module_name")
    return [value] if isinstance(value, str) else list(value or ())


def port_of(argv: list[str]) -> int:
    for flag in ("-p", "--port"):
        if flag in argv:
            return int(argv[argv.index(flag) + 1])
    raise AssertionError(f"no port in {argv}")


# ================================================================================================
# docker-compose.yaml
# ================================================================================================
def test_compose_parses_and_has_the_whole_stack():
    model = compose_raw()
    assert {"postgres", "minio", MLFLOW, CODE_SERVICE, WEBSERVER, DAEMON} <= set(model["services"])
    declared_volumes = set(model.get("volumes") or {})
    declared_configs = set(model.get("configs") or {})
    for name, svc in model["services"].items():
        assert svc.get("image") or svc.get("build"), f"{name}: neither image nor build"
        for dep in svc.get("depends_on") or {}:
            assert dep in model["services"], f"{name} depends on unknown service {dep}"
        for kind, source, _ in volume_specs(svc):
            if kind == "volume":
                assert source in declared_volumes, f"{name}: named volume {source} not declared"
        for cfg in svc.get("configs") or []:
            source = cfg["source"] if isinstance(cfg, dict) else cfg
            assert source in declared_configs, f"{name}: config {source} not declared"


def test_compose_referenced_files_exist():
    model = compose()
    checked = 0
    for name, svc in model["services"].items():
        build = svc.get("build")
        if build:
            build = {"context": build} if isinstance(build, str) else build
            context = (DEPLOY / build.get("context", ".")).resolve()
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert context.is_dir(), f"{name}: build context {context} missing"
            assert dockerfile.resolve() == DOCKERFILE, (
                f"{name}: builds {dockerfile}, not deploy/Dockerfile"
            )
            if build.get("target"):
                assert build["target"] in dockerfile_stages(), f"{name}: no stage {build['target']}"
            checked += 1
        for kind, source, target in volume_specs(svc):
            if kind == "bind":
                assert (DEPLOY / source).exists(), f"{name}: mounts missing {source} at {target}"
                checked += 1
    for name, cfg in (model.get("configs") or {}).items():
        assert "file" in cfg or "content" in cfg, f"config {name}: neither file nor content"
        if "file" in cfg:
            assert (DEPLOY / cfg["file"]).exists(), f"config {name}: {cfg['file']} missing"
    mounts = {
        target: source
        for svc in DAGSTER_SERVICES
        for target, source in bind_map(services()[svc]).items()
    }
    dagster_home = service_env(CODE_SERVICE)["DAGSTER_HOME"]
    assert mounts[f"{dagster_home}/dagster.yaml"] == INSTANCE
    assert WORKSPACE in mounts.values()
    assert checked >= 6


def test_compose_variables_are_all_in_env_example():
    # Compose interpolates every string of the parsed file (comments are not part of it).
    strings = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                strings.append(str(k))
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            strings.append(node)

    walk(compose_raw())
    text = "\n".join(strings)
    used = {m["name"] for m in VAR_REF.finditer(text.replace("$$", ""))}
    documented = set(env_example())
    assert not used - documented, (
        f"in docker-compose.yaml, not in .env.example: {sorted(used - documented)}"
    )
    assert not documented - used, (
        f"in .env.example, never used by compose: {sorted(documented - used)}"
    )
    # A bare $VAR is interpolated by Compose too; only ${VAR} (documented) and $$ (shell) are
    # allowed.
    leftover = VAR_REF.sub("", text.replace("$$", ""))
    assert "$" not in leftover, [line for line in leftover.splitlines() if "$" in line]
    # ...and the file interpolates once every value is filled in, while an empty secret refuses.
    compose()
    with pytest.raises(ValueError, match="DAGSTER_PG_PASSWORD"):
        interpolate(compose_raw(), {**filled_env(), "DAGSTER_PG_PASSWORD": ""})


def test_compose_credentials_only_come_from_variables():
    raw = compose_raw()
    for name in raw["services"]:
        for key, value in service_env(name, raw).items():
            if SECRET_NAME.search(key) and value:
                assert "${" in value or value.startswith("$$"), (
                    f"{name}: {key} is a literal, not a ${{VAR}}"
                )
    # the storage options JSON: every credential inside is a variable too
    options = service_env(CODE_SERVICE, raw)["MLOPS_LAKE_STORAGE_OPTIONS"]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert re.search(rf'"{key}"\s*:\s*"\$\{{', options), (
            f"MLOPS_LAKE_STORAGE_OPTIONS: {key} is a literal"
        )
    # no password inside a connection URI anywhere (they'd show up in `ps` and `docker inspect`)
    interpolated = json.dumps(compose())
    assert "://" in interpolated
    assert not re.search(r'://[^/\s@"]+:[^/\s@"]+@', interpolated), "a URI with user:password@"


def test_every_env_var_the_code_reads_is_set_or_documented():
    code_env = service_env(CODE_SERVICE)
    documented = set(env_example())
    missing = sorted(code_env_vars() - set(code_env) - documented)
    assert not missing, (
        f"read by mlops_assets, neither set for {CODE_SERVICE} nor in .env.example: {missing}"
    )
    for name in REQUIRED_CODE_ENV:
        assert code_env.get(name), f"{CODE_SERVICE}: {name} must be set"
    # ...and the reverse: no typo'd MLOPS_* name set for the code that the code never reads
    unread = sorted(k for k in code_env if k.startswith("MLOPS_") and k not in code_env_vars())
    assert not unread, f"set for {CODE_SERVICE} but never read by mlops_assets: {unread}"


def test_instance_variables_reach_every_dagster_process():
    """deploy/dagster.yaml's `env:` references are set in the webserver, the daemon and the
    code server (which also opens the instance: runs are launched inside it)."""
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"env"}:
                refs.add(node["env"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load(INSTANCE.read_text(encoding="utf-8")))
    assert refs >= {"DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD"}
    for name in DAGSTER_SERVICES:
        env = service_env(name)
        assert {r for r in refs if not env.get(r)} == set(), f"{name}: instance variables unset"
        assert env.get("DAGSTER_HOME"), f"{name}: DAGSTER_HOME"
    assert service_env(WEBSERVER)["DAGSTER_PG_HOST"] in services()


def test_ports_agree_across_compose_workspace_and_dockerfile():
    ws = yaml.safe_load(WORKSPACE.read_text(encoding="utf-8"))["load_from"][0]["grpc_server"]
    cmd = service_command(CODE_SERVICE)
    code = services()[CODE_SERVICE]
    exposed = {int(str(p).split("/")[0]) for p in code.get("expose") or []}
    health = code["healthcheck"]["test"]
    stage = stage_of(code["build"]["target"])
    expose_instr = [int(a.split("/")[0]) for ins, a in stage_chain(stage) if ins == "EXPOSE"]
    image_port = port_of(dockerfile_stage_cmd(code["build"]["target"]))
    assert ws["host"] == CODE_SERVICE
    assert ws["port"] == port_of(cmd) == image_port == port_of(health) == expose_instr[-1]
    assert exposed == {ws["port"]}
    assert (
        "-h" in cmd and cmd[cmd.index("-h") + 1] == "0.0.0.0"
    )  # reachable from the other containers


def test_delta_lake_on_s3_with_valid_storage_options():
    from mlops_assets.data.lake import DeltaLake

    env = service_env(CODE_SERVICE)
    assert env["MLOPS_LAKE_URI"].startswith("s3://")
    options = json.loads(env["MLOPS_LAKE_STORAGE_OPTIONS"])
    assert isinstance(options, dict) and all(isinstance(v, str) for v in options.values()), options
    assert {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} <= set(
        options
    )
    # delta-rs refuses S3 writes without a safe commit protocol or an explicit "unsafe rename"
    assert (
        options.get("aws_conditional_put") == "etag"
        or options.get("AWS_S3_ALLOW_UNSAFE_RENAME") == "true"
    )
    endpoint = options["AWS_ENDPOINT_URL"]
    assert endpoint.split("://")[1].split(":")[0] in services(), (
        f"{endpoint}: not a compose service"
    )
    lake = DeltaLake(
        root=env["MLOPS_LAKE_URI"], storage_options_json=env["MLOPS_LAKE_STORAGE_OPTIONS"]
    )
    assert lake.storage_options == options
    assert lake.uri("features") == env["MLOPS_LAKE_URI"] + "/features"


def mlflow_server_options() -> dict[str, tuple[str, ...]]:
    """`mlflow server`'s options, read from the installed mlflow source without importing it
    (importing mlflow's CLI costs seconds): the ``click.option(...)`` decorators of ``server``
    in mlflow/cli/__init__.py, and the shared ones it takes from mlflow/utils/cli_args.py.
    Flag -> all flags of that option."""
    import importlib.util

    root = Path(importlib.util.find_spec("mlflow").origin).parent  # finds, does not import
    shared = {}
    for node in ast.parse((root / "utils" / "cli_args.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            shared[node.targets[0].id] = node.value
    cli = ast.parse((root / "cli" / "__init__.py").read_text(encoding="utf-8"))
    fn = next(n for n in ast.walk(cli) if isinstance(n, ast.FunctionDef) and n.name == "server")
    options = {}
    for deco in fn.decorator_list:
        if isinstance(deco, ast.Attribute) and getattr(deco.value, "id", "") == "cli_args":
            deco = shared[deco.attr]
        if isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "option":
            flags = tuple(
                a.value
                for a in deco.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            )
            for flag in flags:
                for part in flag.split("/"):
                    options[part.strip()] = flags
    assert {
        "--backend-store-uri",
        "--artifacts-destination",
        "--serve-artifacts",
        "--host",
        "--allowed-hosts",
    } <= set(options), "mlflow cli layout changed"
    return options


def test_mlflow_server_postgres_backend_s3_artifacts():
    import fnmatch
    from urllib.parse import urlsplit

    import sqlalchemy

    cmd = service_command(MLFLOW)
    assert cmd[:2] == ["mlflow", "server"]
    known = mlflow_server_options()
    args = {}
    i = 2
    while i < len(cmd):
        flag = cmd[i]
        assert flag in known, f"mlflow server has no option {flag}"
        if (
            i + 1 < len(cmd)
            and not cmd[i + 1].startswith("--")
            and flag not in ("--serve-artifacts", "--dev")
        ):
            args[flag], i = cmd[i + 1], i + 2
        else:
            args[flag], i = True, i + 1
    backend = args["--backend-store-uri"]
    # the installed SQLAlchemy resolves this URL to the locked driver (no connection is made)
    assert sqlalchemy.create_engine(backend).dialect.driver == LOCKED_DRIVER
    assert urlsplit(backend).password is None
    assert urlsplit(backend).hostname == "postgres"
    assert (
        args["--artifacts-destination"].startswith("s3://")
        and args.get("--serve-artifacts") is True
    )
    env = service_env(MLFLOW)
    assert {
        "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PGPASSWORD",
    } <= set(env)
    # the code location's tracking URI points at this service, and MLflow 3's Host-header check
    # (mlflow.server.security_utils.is_allowed_host_header: exact, or fnmatch when "*") admits it
    tracking = urlsplit(service_env(CODE_SERVICE)["MLFLOW_TRACKING_URI"])
    assert tracking.hostname == MLFLOW and tracking.port == port_of(cmd)
    allowed = [h.strip() for h in args["--allowed-hosts"].split(",")]
    assert any(
        fnmatch.fnmatch(tracking.netloc, a) if "*" in a else tracking.netloc == a for a in allowed
    )
    assert MLFLOW in services()[CODE_SERVICE]["depends_on"]


def test_dagster_service_commands_parse_with_the_installed_dagster():
    webserver_cmd, webserver = click_parse(
        service_command(WEBSERVER), bind_map(services()[WEBSERVER])
    )
    assert webserver_cmd == "dagster-webserver"
    assert [Path(p).resolve() for p in webserver["workspace"]] == [WORKSPACE]
    daemon_cmd, daemon = click_parse(service_command(DAEMON), bind_map(services()[DAEMON]))
    assert daemon_cmd == "dagster-daemon run"
    assert [Path(p).resolve() for p in daemon["workspace"]] == [WORKSPACE]
    code_cmd, code = click_parse(service_command(CODE_SERVICE))
    assert code_cmd == "dagster code-server start"
    health_cmd, _ = click_parse(services()[CODE_SERVICE]["healthcheck"]["test"][1:])
    assert health_cmd == "dagster api grpc-health-check"


# ================================================================================================
# Dockerfile
# ================================================================================================
def test_dockerfile_builds_from_the_lock_as_a_non_root_user():
    stages = dockerfile_stages()
    for name, stage in stages.items():
        assert stage["base"] == "python:3.11-slim" or stage["parent"], (
            f"stage {name} FROM {stage['base']}"
        )
    assert list(stages)[-1] == "code-location", "the default build target must be the code location"
    instructions = stage_chain("code-location")
    assert all(ins != "ENTRYPOINT" for ins, _ in dockerfile_instructions()), (
        "no ENTRYPOINT: the Helm chart and K8sRunLauncher pass the whole command as container args"
    )

    def index(pred, what):
        hits = [i for i, (ins, args) in enumerate(instructions) if pred(ins, args)]
        assert hits, f"Dockerfile: no {what}"
        return hits[0]

    copy_lock = index(
        lambda i, a: i == "COPY" and "requirements.lock" in a.split(), "COPY requirements.lock"
    )
    lock = index(
        lambda i, a: (
            i == "RUN" and re.search(r"pip install\b[^&]*--no-deps[^&]*-r requirements\.lock", a)
        ),
        "RUN pip install --no-deps -r requirements.lock",
    )
    copy_pkg = index(
        lambda i, a: i == "COPY" and a.split()[0] == "mlops_assets", "COPY mlops_assets"
    )
    pkg = index(
        lambda i, a: i == "RUN" and re.search(r"pip install\b[^&]*--no-deps[^&]*(-e )?\.(\s|$)", a),
        "RUN pip install --no-deps . (the package)",
    )
    assert copy_lock < lock < copy_pkg < pkg
    assert "pip check" in instructions[pkg][1]

    for name in ("code-location", "mlflow-server"):
        users = [args for ins, args in stage_chain(name) if ins == "USER"]
        assert users and users[-1].split(":")[0] not in ("root", "0"), f"stage {name} runs as root"
    uid = next(a for i, a in stage_chain("code-location") if i == "USER").split(":")[0]
    assert re.search(
        rf"useradd\b.*--uid {uid}\b", " ".join(a for i, a in instructions if i == "RUN")
    )


def test_dockerfile_pins_agree_with_the_lock():
    """A package a stage adds with ``--constraint requirements.lock`` is pinned at the locked
    version:
    ``pip install`` refuses a pin that contradicts its constraint, so a stale pin breaks the
    build."""

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()

    locked = dict(
        tuple(line.split("==", 1))
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    locked = {canonical(k): v.strip() for k, v in locked.items()}
    pins = [
        (name, version)
        for ins, args in dockerfile_instructions()
        if ins == "RUN" and "--constraint requirements.lock" in args
        for name, version in re.findall(
            r"([A-Za-z0-9][A-Za-z0-9_.\-\[\]]*)==([0-9][^\"'\s]*)", args
        )
    ]
    assert ("boto3", locked["boto3"]) in pins, (
        pins
    )  # the MLflow server writes artifacts to S3 with it
    for name, version in pins:
        if canonical(name) in locked:
            assert version == locked[canonical(name)], (
                f"Dockerfile pins {name}=={version}, the lock {locked[canonical(name)]}"
            )


def test_dockerfile_copy_sources_exist():
    copies = 0
    for ins, args in dockerfile_instructions():
        if ins not in ("COPY", "ADD"):
            continue
        tokens = json.loads(args) if args.startswith("[") else shlex.split(args)
        flags = [t for t in tokens if t.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        sources = [t for t in tokens if not t.startswith("--")][:-1]
        for source in sources:
            assert list(ROOT.glob(source)), (
                f"{ins} {source}: not in the build context (the repository root)"
            )
            copies += 1
    assert copies >= 4


def test_dockerfile_cmd_is_the_code_server_of_the_definitions_module():
    cmd = dockerfile_stage_cmd(None)
    assert cmd == [
        "dagster",
        "code-server",
        "start",
        "-m",
        "mlops_assets.definitions",
        "-h",
        "0.0.0.0",
        "-p",
        "4000",
    ]
    _, params = click_parse(cmd)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert modules(params) == [pyproject["tool"]["dagster"]["module_name"]]
    env = dockerfile_env(None)
    assert env["DAGSTER_HOME"] and env["MLOPS_HOME"]
    # the compose volumes land where the image expects them
    mounts = {target for _, _, target in volume_specs(services()[CODE_SERVICE])}
    assert env["MLOPS_HOME"] in mounts and f"{env['DAGSTER_HOME']}/dagster.yaml" in mounts
    assert service_env(CODE_SERVICE)["MLOPS_HOME"] == env["MLOPS_HOME"]
    assert service_env(CODE_SERVICE)["DAGSTER_HOME"] == env["DAGSTER_HOME"]


def test_cmd_module_imports_in_a_clean_container_like_environment(tmp_path):
    """The CMD's module loads its Definitions with only the image's ENV (paths moved to tmp)."""
    image_env = dockerfile_env(None)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "MLOPS_HOME": str(tmp_path / "mlops_home"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        **{k: v for k, v in image_env.items() if k.startswith("MLOPS_GIT_")},
    }
    module = dockerfile_stage_cmd(None)[4]
    code = (
        f"import {module} as m; from dagster import Definitions; "
        "assert isinstance(m.defs, Definitions); print(len(list(m.defs.resolve_all_asset_keys())))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) > 5


# ================================================================================================
# workspace.yaml and dagster.yaml, through Dagster's own loaders
# ================================================================================================
def test_workspace_yaml_is_a_grpc_workspace_for_the_code_location():
    from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
    from dagster._core.workspace.config_schema import ensure_workspace_config
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    ensure_workspace_config(yaml.safe_load(WORKSPACE.read_text(encoding="utf-8")), str(WORKSPACE))
    origins = location_origins_from_yaml_paths([str(WORKSPACE)])
    assert len(origins) == 1
    origin = origins[0]
    assert isinstance(origin, GrpcServerCodeLocationOrigin)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert origin.location_name == pyproject["tool"]["dagster"]["code_location_name"]
    assert (origin.host, origin.port) == (CODE_SERVICE, 4000)


def resolved_instance_postgres_db(monkeypatch) -> dict:
    env = {
        "DAGSTER_PG_HOST": "postgres",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": "fake",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    db = yaml.safe_load(INSTANCE.read_text(encoding="utf-8"))["storage"]["postgres"]["postgres_db"]
    return {
        k: os.environ[v["env"]] if isinstance(v, dict) and set(v) == {"env"} else v
        for k, v in db.items()
    }


def test_deploy_dagster_yaml_is_a_valid_instance_config(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    resolved_instance_postgres_db(monkeypatch)
    (tmp_path / "dagster.yaml").write_text(INSTANCE.read_text(encoding="utf-8"))
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None and "postgres" in config["storage"]
    import dagster_postgres  # noqa: F401  the storage module the instance names is installed


def test_deploy_dagster_yaml_postgres_url_uses_a_locked_driver(monkeypatch):
    """dagster-postgres builds ``<scheme>://...`` (default scheme ``postgresql``, which
    SQLAlchemy 2.1 maps to psycopg 3, not installed): the URL must name the locked driver."""
    import sqlalchemy
    from dagster_postgres.utils import get_conn_string

    url = get_conn_string(**resolved_instance_postgres_db(monkeypatch))
    assert sqlalchemy.create_engine(url).dialect.driver == LOCKED_DRIVER  # no connection is made


# ================================================================================================
# Helm values
# ================================================================================================
# Keys of the official Dagster chart's values (helm/dagster/values.yaml, whose
# values.schema.json `helm` enforces). SOURCE, honestly: no copy of the chart, its values.yaml
# or its values.schema.json exists on this machine (searched the filesystem and the venv's
# site-packages; dagster-k8s is not installed and does not ship the chart) and there is no
# network, so this list was written from knowledge of the chart's 1.x values.yaml layout,
# NOT transcribed from the 1.13.27 file. It covers every top-level key and the sub-keys this
# project uses; ANY marks subtrees not checked further (Kubernetes objects, unused sections).
# The authoritative check is in deploy/ci/github-actions.yml:
#   helm template dagster dagster/dagster --version 1.13.27 --values deploy/helm/values.yaml
ANY = object()
IMAGE = {"repository": ANY, "tag": ANY, "pullPolicy": ANY}
K8S_POD = dict.fromkeys(
    (
        "env",
        "envConfigMaps",
        "envSecrets",
        "labels",
        "annotations",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "volumeMounts",
        "volumes",
        "schedulerName",
        "initContainerResources",
        "deploymentLabels",
    ),
    ANY,
)
USER_DEPLOYMENT = {
    "name": ANY,
    "image": IMAGE,
    "dagsterApiGrpcArgs": ANY,
    "codeServerArgs": ANY,
    "port": ANY,
    "includeConfigInLaunchedRuns": {"enabled": ANY},
    "service": ANY,
    "initContainers": ANY,
    "sidecarContainers": ANY,
    **K8S_POD,
}
CHART_KEYS = {
    "global": {
        "postgresqlSecretName": ANY,
        "dagsterHome": ANY,
        "serviceAccountName": ANY,
        "celeryConfigSecretName": ANY,
    },
    "nameOverride": ANY,
    "fullnameOverride": ANY,
    "rbacEnabled": ANY,
    "imagePullSecrets": ANY,
    "computeLogManager": ANY,
    "pythonLogs": ANY,
    "dagsterWebserver": {
        "replicaCount": ANY,
        "image": IMAGE,
        "nameOverride": ANY,
        "pathPrefix": ANY,
        "service": ANY,
        "workspace": ANY,
        "enableReadOnly": ANY,
        "dbStatementTimeout": ANY,
        "dbPoolRecycle": ANY,
        "logLevel": ANY,
        **K8S_POD,
    },
    "dagster-user-deployments": {
        "enabled": ANY,
        "enableSubchart": ANY,
        "imagePullSecrets": ANY,
        "deployments": [USER_DEPLOYMENT],
    },
    "postgresql": {
        "enabled": ANY,
        "image": ANY,
        "postgresqlHost": ANY,
        "postgresqlUsername": ANY,
        "postgresqlPassword": ANY,
        "postgresqlDatabase": ANY,
        "postgresqlParams": ANY,
        "postgresqlScheme": ANY,
        "service": {"port": ANY},
    },
    "generatePostgresqlPasswordSecret": ANY,
    "generateCeleryConfigSecret": ANY,
    "rabbitmq": ANY,
    "redis": ANY,
    "flower": ANY,
    "ingress": ANY,
    "dagsterDaemon": {
        "enabled": ANY,
        "image": IMAGE,
        "heartbeatTolerance": ANY,
        "logLevel": ANY,
        "runCoordinator": {
            "enabled": ANY,
            "type": ANY,
            "config": {
                "queuedRunCoordinator": {
                    "maxConcurrentRuns": ANY,
                    "tagConcurrencyLimits": ANY,
                    "dequeueIntervalSeconds": ANY,
                    "dequeueUseThreads": ANY,
                    "dequeueNumWorkers": ANY,
                },
                "customRunCoordinator": ANY,
            },
        },
        "runMonitoring": {
            "enabled": ANY,
            "startTimeoutSeconds": ANY,
            "cancelTimeoutSeconds": ANY,
            "maxResumeRunAttempts": ANY,
            "pollIntervalSeconds": ANY,
            "freeSlotsAfterRunEndSeconds": ANY,
        },
        "runRetries": {"enabled": ANY, "maxRetries": ANY, "retryOnAssetOrOpFailure": ANY},
        "sensors": ANY,
        "schedules": ANY,
        "checkDbReadyInitContainer": ANY,
        **K8S_POD,
    },
    "busybox": ANY,
    "migrate": ANY,
    "runLauncher": {
        "type": ANY,
        "config": {
            "k8sRunLauncher": dict.fromkeys(
                (
                    "image",
                    "imagePullPolicy",
                    "jobNamespace",
                    "loadInclusterConfig",
                    "kubeconfigFile",
                    "envConfigMaps",
                    "envSecrets",
                    "envVars",
                    "volumeMounts",
                    "volumes",
                    "labels",
                    "resources",
                    "schedulerName",
                    "securityContext",
                    "runK8sConfig",
                    "failPodOnRunFailure",
                ),
                ANY,
            ),
            "celeryK8sRunLauncher": ANY,
            "customRunLauncher": ANY,
        },
    },
    "scheduler": ANY,
    "serviceAccount": ANY,
    "extraManifests": ANY,
    "telemetry": {"enabled": ANY},
    "retention": {
        "enabled": ANY,
        "schedule": {"purgeAfterDays": ANY},
        "sensor": {
            "purgeAfterDays": {"failure": ANY, "skipped": ANY, "started": ANY, "success": ANY}
        },
        "autoMaterialize": ANY,
    },
    "additionalInstanceConfig": ANY,
}
RUN_LAUNCHER_TYPES = {"K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"}
RUN_COORDINATOR_TYPES = {"QueuedRunCoordinator", "CustomRunCoordinator"}


def unknown_keys(values, spec, path="") -> list[str]:
    if spec is ANY:
        return []
    if isinstance(spec, list):
        assert isinstance(values, list), f"{path}: expected a list"
        return [
            e for i, item in enumerate(values) for e in unknown_keys(item, spec[0], f"{path}[{i}]")
        ]
    assert isinstance(values, dict), f"{path}: expected a mapping, got {type(values).__name__}"
    errors = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if key not in spec:
            errors.append(where)
        else:
            errors += unknown_keys(value, spec[key], where)
    return errors


@cache
def helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))


def test_helm_values_use_only_chart_keys():
    assert unknown_keys(helm_values(), CHART_KEYS) == []
    assert helm_values()["runLauncher"]["type"] == "K8sRunLauncher"
    assert helm_values()["dagsterDaemon"]["runCoordinator"]["type"] in RUN_COORDINATOR_TYPES
    # the checker itself rejects what it should
    wrong = {"runLauncher": {"typ": "K8sRunLauncher"}, "dagit": {}}
    assert unknown_keys(wrong, CHART_KEYS) == ["runLauncher.typ", "dagit"]


def test_helm_code_location_matches_the_image():
    values = helm_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert values["dagster-user-deployments"]["enabled"] is True
    image_cmd = dockerfile_stage_cmd(None)
    assert deployment["port"] == port_of(image_cmd)
    # the chart runs `dagster code-server start -h 0.0.0.0 -p <port> <codeServerArgs>`
    argv = [
        "dagster",
        "code-server",
        "start",
        "-h",
        "0.0.0.0",
        "-p",
        str(deployment["port"]),
        *deployment["codeServerArgs"],
    ]
    _, params = click_parse(argv)
    assert modules(params) == ["mlops_assets.definitions"]
    assert (
        deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    )  # run pods get env + volumes
    env = {e["name"]: e.get("value") for e in deployment["env"]}
    unread = sorted(set(env) - code_env_vars())
    assert not unread, f"set in the Helm values but never read by mlops_assets: {unread}"
    for name in ("MLOPS_HOME", "MLFLOW_TRACKING_URI", "MLOPS_LAKE_URI"):
        assert env.get(name), f"Helm user deployment: {name} unset"
    assert env["MLOPS_LAKE_URI"].startswith("s3://")
    assert not [k for k in env if SECRET_NAME.search(k)], (
        "secrets belong in envSecrets, not in values"
    )
    assert deployment["envSecrets"], (
        "MLOPS_LAKE_STORAGE_OPTIONS / MLOPS_ALERT_WEBHOOK come from a Secret"
    )
    assert env["MLOPS_HOME"] == dockerfile_env(None)["MLOPS_HOME"]
    assert env["MLOPS_HOME"] in {m["mountPath"] for m in deployment["volumeMounts"]}
    mounted = {m["name"] for m in deployment["volumeMounts"]}
    assert mounted <= {v["name"] for v in deployment["volumes"]}
    uid = next(a for i, a in stage_chain("code-location") if i == "USER").split(":")[0]
    assert str(deployment["podSecurityContext"]["runAsUser"]) == uid
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True


def test_helm_instance_mirrors_deploy_dagster_yaml():
    import sqlalchemy

    values, instance = helm_values(), yaml.safe_load(INSTANCE.read_text(encoding="utf-8"))
    assert values["runLauncher"]["type"] in RUN_LAUNCHER_TYPES
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True
    assert coordinator["type"] == instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    queued, expected = (
        coordinator["config"]["queuedRunCoordinator"],
        instance["run_coordinator"]["config"],
    )
    assert queued["maxConcurrentRuns"] == expected["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == expected["tag_concurrency_limits"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert (
        monitoring["enabled"],
        monitoring["startTimeoutSeconds"],
        monitoring["maxResumeRunAttempts"],
    ) == (
        instance["run_monitoring"]["enabled"],
        instance["run_monitoring"]["start_timeout_seconds"],
        instance["run_monitoring"]["max_resume_run_attempts"],
    )
    retries = values["dagsterDaemon"]["runRetries"]
    for key, value in instance[
        "run_retries"
    ].items():  # enabled, max_retries, retry_on_asset_or_op_failure
        camel = re.sub(r"_(\w)", lambda m: m[1].upper(), key)
        assert retries.get(camel) == value, f"dagsterDaemon.runRetries.{camel} != run_retries.{key}"
    retention = values["retention"]
    assert retention["enabled"] is True
    assert (
        retention["schedule"]["purgeAfterDays"]
        == instance["retention"]["schedule"]["purge_after_days"]
    )
    for outcome, days in instance["retention"]["sensor"]["purge_after_days"].items():
        assert retention["sensor"]["purgeAfterDays"][outcome] == days
    assert values["telemetry"]["enabled"] == instance["telemetry"]["enabled"]
    pg = values["postgresql"]
    assert pg["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in pg, "the password comes from global.postgresqlSecretName"
    url = f"{pg['postgresqlScheme']}://u@{pg['postgresqlHost']}:{pg['service']['port']}/{pg['postgresqlDatabase']}"
    assert (
        sqlalchemy.create_engine(url).dialect.driver == LOCKED_DRIVER
    )  # what run pods (the lock) can open


# ================================================================================================
# CI workflow
# ================================================================================================
RUNNER_TOOLS = {"helm", "docker", "sed"}  # shipped by GitHub's ubuntu runner images
REDIRECTS = {">", ">>", "<", "2>", "&>"}
SEPARATORS = {"&&", "||", ";", "|"}


def shell_commands(script: str) -> list[list[str]]:
    """Simple commands of a `run:` script: lines joined across continuations and open quotes,
    split on && || ; |, redirections dropped; GitHub ${{ }} expressions become a placeholder."""
    script = re.sub(r"\$\{\{.*?\}\}", "GH_EXPRESSION", script).replace("\\\n", " ")
    commands, buf = [], ""
    for line in script.splitlines():
        if not buf and (not line.strip() or line.strip().startswith("#")):
            continue
        buf += line + "\n"
        try:
            shlex.split(buf)
        except ValueError:  # a quote opened on this line closes on a later one
            continue
        lexer = shlex.shlex(buf, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current, skip = [], False
        for token in lexer:
            if skip:
                skip = False
            elif token in REDIRECTS:
                skip = True
            elif token in SEPARATORS:
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
        buf = ""
    assert not buf.strip(), f"unterminated quote in: {buf!r}"
    return [c for c in commands if c]


@cache
def makefile() -> tuple[frozenset[str], str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = {
        m for m in re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.M) if not m.startswith(".")
    }
    return frozenset(targets), text


def check_command(argv: list[str]) -> str:
    from mlops_assets.operations.cli import build_parser

    prog = argv[0]
    if prog == "make":
        targets, text = makefile()
        goals = [a for a in argv[1:] if "=" not in a and not a.startswith("-")]
        assert goals, f"{argv}: no target"
        for goal in goals:
            assert goal in targets, f"make {goal}: no such Makefile target ({sorted(targets)})"
        for assignment in (a for a in argv[1:] if "=" in a):
            var = assignment.split("=", 1)[0]
            assert re.search(rf"\$\({var}\)|^{var}\s*[?:]?=", text, re.M), (
                f"make {var}=: Makefile never uses it"
            )
        return "make " + " ".join(goals)
    if prog == ".venv/bin/mlops-assets":
        try:
            args = build_parser().parse_args(argv[1:])
        except SystemExit as err:
            raise AssertionError(
                f"{' '.join(argv)}: rejected by mlops_assets.operations.cli.build_parser()"
            ) from err
        return f"mlops-assets {args.command}"
    if prog == ".venv/bin/python":
        if argv[1] == "-c":
            compile(argv[2], "<workflow python -c>", "exec")
            return "python -c"
        if argv[1] == "-m":
            import importlib.util

            assert importlib.util.find_spec(argv[2]), f"python -m {argv[2]}: no such module"
            return f"python -m {argv[2]}"
        raise AssertionError(f"{argv}: only python -c / -m are checked")
    if prog in RUNNER_TOOLS:
        for arg in argv[1:]:
            if re.match(r"(deploy|mlops_assets|docs)/", arg):
                assert (ROOT / arg).exists(), f"{' '.join(argv)}: {arg} does not exist"
        return prog
    raise AssertionError(f"{' '.join(argv)}: {prog} is neither a project command nor a runner tool")


def test_ci_workflow_parses_and_runs_tests_then_gates_on_pull_requests():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    setup = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setup and str(setup[0]["with"]["python-version"]) == "3.11"
    ran = [check_command(c) for s in steps if "run" in s for c in shell_commands(s["run"])]
    assert "make test" in ran
    order = [ran.index(c) for c in ("make test", "make demo", "mlops-assets status", "python -c")]
    assert order == sorted(order), ran


def test_ci_workflow_commands_all_exist():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    commands = [
        c
        for job in workflow["jobs"].values()
        for s in job["steps"]
        if "run" in s
        for c in shell_commands(s["run"])
    ]
    assert len(commands) >= 8
    for argv in commands:
        check_command(argv)
    # the checker rejects what does not exist
    for bad in (
        ["make", "deploy"],
        [".venv/bin/mlops-assets", "gates"],
        ["mlops-assets", "status"],
        [".venv/bin/mlops-assets", "status", "--yaml"],
        ["helm", "lint", "deploy/helm/missing.yaml"],
    ):
        with pytest.raises(AssertionError):
            check_command(bad)
