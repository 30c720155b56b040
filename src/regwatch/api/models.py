"""Response models for the OpenAPI document (`/docs`). Routes return pre-serialised JSON (see
`responses.py`), so these describe the shapes without being used to validate them; the unit
tests check that the shaping functions produce exactly these fields."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ArtifactMetadata(BaseModel):
    registry: str
    labels: dict[str, str] = Field(default_factory=dict)


class Artifact(BaseModel):
    name: str = Field(description="the repository")
    type: str = Field("docker", description='always "docker", as Clouddriver answers')
    version: str = Field(description="the tag")
    reference: str = Field(description="registry/repository:tag")
    metadata: ArtifactMetadata


class ImageItem(BaseModel):
    repository: str
    tag: str
    account: str
    registry: str
    digest: str | None
    commitId: str | None = Field(None, description="includeDetails only (image label)")
    buildNumber: str | None = Field(None, description="includeDetails only (image label)")
    branch: str | None = Field(None, description="includeDetails only (image label)")
    artifact: Artifact


class CredentialsBrief(BaseModel):
    name: str
    environment: str
    accountType: str
    cloudProvider: str = "dockerRegistry"
    requiredGroupMembership: list[str]
    permissions: dict[str, list[str]]
    accountId: str | None = None
    type: str = "dockerRegistry"
    challengeDestructiveActions: bool = False
    primaryAccount: bool


class CredentialsExpanded(CredentialsBrief):
    address: str
    registry: str
    v2Endpoint: str
    email: str | None
    trackDigests: bool
    inspectDigests: bool
    sortTagsByDate: bool
    cacheThreads: int
    cacheIntervalSeconds: int
    clientTimeoutMillis: int
    paginateSize: int
    insecureRegistry: bool
    skip: list[str]
    catalogFile: str | None
    repositoriesRegex: str | None
    enabled: bool = True


class ErrorBody(BaseModel):
    timestamp: int = Field(description="epoch milliseconds")
    status: int
    error: str = Field(description="the HTTP reason phrase")
    message: str
    path: str
    hint: str | None = None


class ScanRequested(BaseModel):
    account: str
    requested: bool
    scanning: bool = Field(description="a scan was running: another follows right after it")
    queued: bool = Field(False, description="another instance holds the account and scans it")
    holder: str | None = Field(None, description="the instance holding the account's lease")
    instance: str | None = Field(None, description="the instance that answered")


class Health(BaseModel):
    status: str = Field(description='"UP" while the process serves')
    instance: str
    uptimeSeconds: float
    provider: dict[str, Any]
    scanning: bool = Field(description="false for `regwatch serve --no-scan`")
    config: dict[str, Any]
    accounts: dict[str, dict[str, Any]]
    workers: dict[str, dict[str, Any]]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a bad parameter"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "unknown account"},
}
