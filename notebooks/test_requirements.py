"""The job cluster's packages keep what the pinned Databricks Runtime ships; the local environment tests the same."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent

# The versions serverless environment 4 and Databricks Runtime 17.3 LTS both ship of the packages the notebook's
# exporters use, from their release notes (databricks/environments python/serverless/serverless-v4/constraints.txt,
# python/dbr/17.3.x-scala2.13/constraints.txt). packaging differs (24.1, 24.2) and is left to what each ships.
RUNTIME = {
    "protobuf": "5.29.4",
    "googleapis-common-protos": "1.65.0",
    "requests": "2.32.3",
    "typing-extensions": "4.12.2",
    "wrapt": "1.17.0",
    "psutil": "5.9.0",
    "azure-identity": "1.20.0",
    "msal": "1.32.3",
    "azure-core": "1.34.0",
    "opentelemetry-api": "1.32.1",
    "opentelemetry-sdk": "1.32.1",
    "opentelemetry-semantic-conventions": "0.53b1",
}
# Replaced for the notebook's process, because the exporters need newer ones (see requirements-job.txt).
UPGRADED = {"azure-core", "opentelemetry-api", "opentelemetry-sdk", "opentelemetry-semantic-conventions"}


def pins(name: str) -> dict[str, str]:
    out = {}
    for line in (HERE / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pkg, _, version = line.partition("==")
            out[re.sub(r"[-_.]+", "-", pkg).lower()] = version
    return out


def test_job_packages_keep_the_runtimes() -> None:
    job = pins("requirements-job.txt")
    for pkg, version in RUNTIME.items():
        if pkg in job and pkg not in UPGRADED:
            assert job[pkg] == version, f"{pkg}=={job[pkg]} would replace the runtime's {version}"
    assert all(job[pkg] != RUNTIME[pkg] for pkg in UPGRADED), "an upgrade that is none is listed as one"


def test_local_environment_matches_the_job() -> None:
    job, local = pins("requirements-job.txt"), pins("requirements.txt")
    for pkg, version in job.items():
        if pkg == "typing-extensions":  # newer here for nbclient and schemathesis
            continue
        assert local.get(pkg) == version, f"{pkg}: {local.get(pkg)} here, {version} on the cluster"
