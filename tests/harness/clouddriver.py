"""What Clouddriver answers for a pushed image, built from the pushed image itself (never from
regwatch's code): the expected item of `/dockerRegistry/images/find`."""

from __future__ import annotations

from typing import Any

from .images import PushedImage
from .registry import RegistryHandle


def expected_item(handle: RegistryHandle, account: str, image: PushedImage) -> dict[str, Any]:
    """Clouddriver's item for `image` pushed to `handle`, indexed under `account`."""
    return {
        "repository": image.repository,
        "tag": image.tag,
        "account": account,
        "registry": handle.host,
        "digest": image.digest,
        "artifact": {
            "name": image.repository,
            "type": "docker",
            "version": image.tag,
            "reference": f"{handle.host}/{image.repository}:{image.tag}",
            "metadata": {"registry": handle.host, "labels": {}},
        },
    }
