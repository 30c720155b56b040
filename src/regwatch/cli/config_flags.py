"""The account flags of `account add` and `account edit`: one table, shared by both commands."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AccountFlag:
    """One account flag: its option name, the account key it sets and how to parse it."""

    flag: str
    key: str  # YAML key; "permissions.READ" for the nested permission lists
    kind: str  # "str" | "int" | "bool" | "list" | "path" | "secret"
    help: str
    default: str | None = None  # upstream's default, shown in `add --help`


ACCOUNT_FLAGS: tuple[AccountFlag, ...] = (
    AccountFlag("--address", "address", "str", "Registry address, e.g. index.docker.io."),
    AccountFlag(
        "--repositories",
        "repositories",
        "list",
        "Repositories to index (space- or comma-separated); none: use the catalog.",
    ),
    AccountFlag(
        "--repositories-regex",
        "repositoriesRegex",
        "str",
        "Index the catalog's repositories that fully match this regex.",
    ),
    AccountFlag(
        "--catalog-file",
        "catalogFile",
        "path",
        'JSON file {"repositories": [...]} read instead of the catalog.',
    ),
    AccountFlag("--skip", "skip", "list", "Repositories to leave out after the catalog."),
    AccountFlag("--username", "username", "str", "Username (_json_key for GCR/GAR, AWS for ECR)."),
    AccountFlag(
        "--password", "password", "secret", "Password; with no value, prompted for without echo."
    ),
    AccountFlag(
        "--password-file", "passwordFile", "path", "File holding the password (e.g. a JSON key)."
    ),
    AccountFlag(
        "--password-command", "passwordCommand", "str", "Shell command that prints the password."
    ),
    AccountFlag(
        "--docker-config-file",
        "dockerconfigFile",
        "path",
        "Docker config.json to take credentials from.",
    ),
    AccountFlag("--email", "email", "str", "Email of the account (informational)."),
    AccountFlag(
        "--cache-interval-seconds", "cacheIntervalSeconds", "int", "Seconds between scans.", "30"
    ),
    AccountFlag(
        "--client-timeout-millis",
        "clientTimeoutMillis",
        "int",
        "Per-request timeout in milliseconds.",
        "60000",
    ),
    AccountFlag("--cache-threads", "cacheThreads", "int", "Parallel scan workers.", "1"),
    AccountFlag(
        "--paginate-size", "paginateSize", "int", "Page size (n=) for catalog and tags.", "100"
    ),
    AccountFlag(
        "--insecure-registry",
        "insecureRegistry",
        "bool",
        "Skip TLS verification (prefer --ca-cert).",
        "false",
    ),
    AccountFlag(
        "--ca-cert", "caCert", "path", "PEM file of a private CA to trust for this registry."
    ),
    AccountFlag(
        "--sort-tags-by-date", "sortTagsByDate", "bool", "Record each tag's creation date.", "false"
    ),
    AccountFlag("--track-digests", "trackDigests", "bool", "Record each tag's digest.", "false"),
    AccountFlag(
        "--inspect-digests", "inspectDigests", "bool", "Record each image's labels.", "false"
    ),
    AccountFlag(
        "--environment", "environment", "str", "Environment name (default: the account name)."
    ),
    AccountFlag(
        "--read-permissions", "permissions.READ", "list", "Roles that may read this account."
    ),
    AccountFlag(
        "--write-permissions", "permissions.WRITE", "list", "Roles that may write this account."
    ),
    AccountFlag(
        "--required-group-membership",
        "requiredGroupMembership",
        "list",
        "Deprecated: use the permission flags.",
    ),
)

# edit only: (flag, list key, "add" | "remove")
LIST_EDIT_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--add-repository", "repositories", "add"),
    ("--remove-repository", "repositories", "remove"),
    ("--add-read-permission", "permissions.READ", "add"),
    ("--remove-read-permission", "permissions.READ", "remove"),
    ("--add-write-permission", "permissions.WRITE", "add"),
    ("--remove-write-permission", "permissions.WRITE", "remove"),
    ("--add-required-group-membership", "requiredGroupMembership", "add"),
    ("--remove-required-group-membership", "requiredGroupMembership", "remove"),
)
