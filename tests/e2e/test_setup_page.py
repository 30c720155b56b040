"""Spinnaker's "Docker Registry" setup page, run verbatim with `regwatch` for `hal`.

The commands are the documentation's, as a user would paste them into a shell; only the values of
the variables point at local registries. Those registries speak TLS with a throwaway CA that is
trusted the way a private CA would be (`SSL_CERT_FILE`), so `--address` needs no scheme, exactly as
`index.docker.io` and `gcr.io` in the docs. `$HOME` is a scratch directory: the default config
file `~/.regwatch/config` is used, as `hal` uses `~/.hal/config`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import RegistryHandle, push_images

BIN_DIR = str(Path(sys.executable).parent)  # holds the installed `regwatch` console script

DOCKER_HUB_PAGE = """
hal config provider docker-registry enable

ADDRESS={address}
REPOSITORIES="{repositories}"
USERNAME={username}

hal config provider docker-registry account add my-docker-registry \\
    --address $ADDRESS \\
    --repositories $REPOSITORIES \\
    --username $USERNAME \\
    --password
"""

GCR_PAGE = """
ADDRESS={address}
PASSWORD_FILE=~/.gcp/gcr-account.json

hal config provider docker-registry account add my-gcr-registry \\
    --address $ADDRESS \\
    --username _json_key \\
    --password-file $PASSWORD_FILE
"""

HUB_USER = "e2e-hub-user"
HUB_PASSWORD = "e2e hub p@ss: 'never shown'"
JSON_KEY = json.dumps(
    {
        "type": "service_account",
        "project_id": "regwatch-e2e",
        "private_key_id": "0123456789abcdef",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n",
        "client_email": "gcr-reader@regwatch-e2e.iam.gserviceaccount.com",
    },
    indent=2,
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def shell(home: Path, tls_material: object) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a snippet of the docs in bash, `hal` being regwatch, with a scratch $HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGWATCH_")}
    env.update(
        HOME=str(home),
        PATH=f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}",
        SSL_CERT_FILE=str(tls_material.ca_cert),  # type: ignore[attr-defined]
    )

    def run(script: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        script = 'set -e\nhal() { regwatch "$@"; }\n' + script
        return subprocess.run(
            ["bash", "-c", script],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


@pytest.fixture
def docker_hub(registry_factory: Callable[..., RegistryHandle]) -> RegistryHandle:
    """A token-auth registry that, like Docker Hub, grants no catalog scope."""
    handle = registry_factory("token", True, username=HUB_USER, password=HUB_PASSWORD)
    push_images(handle, "library/nginx", ["1.25", "latest"])
    push_images(handle, f"{HUB_USER}/app", ["v1"])
    assert handle.token_server is not None
    handle.token_server.allowed_actions = {"pull"}
    return handle


@pytest.fixture
def gcr(registry_factory: Callable[..., RegistryHandle]) -> RegistryHandle:
    """A token-auth registry whose `_json_key` user has a service-account JSON key as password."""
    handle = registry_factory("token", True, username="_json_key", password=JSON_KEY)
    push_images(handle, "regwatch-e2e/app", ["v1", "v2"])
    return handle


def no_secrets(result: subprocess.CompletedProcess[str]) -> None:
    for secret in (HUB_PASSWORD, "BEGIN PRIVATE KEY", "0123456789abcdef"):
        assert secret not in result.stdout
        assert secret not in result.stderr


def test_docker_hub_and_gcr_examples(
    shell: Callable[..., subprocess.CompletedProcess[str]],
    docker_hub: RegistryHandle,
    gcr: RegistryHandle,
    home: Path,
) -> None:
    hub_page = DOCKER_HUB_PAGE.format(
        address=docker_hub.host,
        repositories=f"library/nginx {HUB_USER}/app",
        username=HUB_USER,
    )
    result = shell(hub_page, stdin=HUB_PASSWORD + "\n")
    no_secrets(result)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Enabled the docker-registry provider.",
        "Added account my-docker-registry.",
    ]

    key_file = home / ".gcp" / "gcr-account.json"
    key_file.parent.mkdir()
    key_file.write_text(JSON_KEY + "\n")
    result = shell(GCR_PAGE.format(address=gcr.host))
    no_secrets(result)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Added account my-gcr-registry.\n"
    assert result.stderr == ""

    listing = shell("hal config provider docker-registry account list")
    assert listing.stdout.splitlines() == [
        "Accounts for docker-registry (enabled, primary: my-docker-registry):",
        "  - my-docker-registry",
        "  - my-gcr-registry",
    ]
    hub = json.loads(
        shell("hal config provider docker-registry account get my-docker-registry --json").stdout
    )
    assert hub["address"] == f"https://{docker_hub.host}"
    assert hub["repositories"] == ["library/nginx", f"{HUB_USER}/app"]
    assert (hub["username"], hub["password"]) == (HUB_USER, "********")
    gcr_account = shell("hal config provider docker-registry account get my-gcr-registry")
    no_secrets(gcr_account)
    lines = gcr_account.stdout.splitlines()
    assert f"address: https://{gcr.host}" in lines
    assert "username: _json_key" in lines
    assert f"passwordFile: {key_file}" in lines
    assert "repositories: []" in lines
    config = (home / ".regwatch" / "config").read_text()
    assert "currentDeployment: default" in config
    assert HUB_PASSWORD in config  # stored as Halyard stores it; never printed


def test_docker_hub_without_repositories_explains_the_missing_catalog(
    shell: Callable[..., subprocess.CompletedProcess[str]], docker_hub: RegistryHandle, home: Path
) -> None:
    page = DOCKER_HUB_PAGE.replace("    --repositories $REPOSITORIES \\\n", "")
    result = shell(
        page.format(address=docker_hub.host, repositories="", username=HUB_USER),
        stdin=HUB_PASSWORD + "\n",
    )
    no_secrets(result)
    assert result.returncode == 1
    assert f"Error: the registry {docker_hub.host} refused to list its catalog" in result.stderr
    assert "list the repositories to index with --repositories" in result.stderr
    listing = shell("hal config provider docker-registry account list")
    assert listing.stdout == "No docker-registry accounts are configured.\n"


def test_gcr_with_a_key_file_that_is_not_the_key(
    shell: Callable[..., subprocess.CompletedProcess[str]], gcr: RegistryHandle, home: Path
) -> None:
    key_file = home / ".gcp" / "gcr-account.json"
    key_file.parent.mkdir()
    key_file.write_text(JSON_KEY.replace("regwatch-e2e", "another-project") + "\n")
    result = shell(GCR_PAGE.format(address=gcr.host))
    no_secrets(result)
    assert result.returncode == 1
    assert "refused the credentials" in result.stderr
    assert f"check the username and the password in {key_file}" in result.stderr
    assert not (home / ".regwatch" / "config").exists()
