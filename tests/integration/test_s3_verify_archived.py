"""`verify` of a copy whose objects were moved to an archive storage class (GLACIER)
by a lifecycle rule: they are reported as archived, not as missing, against a real
moto server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_palhm, write_config
from tests.integration.test_s3_cli import ROOT, backup_config, cat, copies
from tests.services.moto import MotoServer

pytestmark = pytest.mark.services


def test_verify_reports_an_archived_object_as_archived(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str
) -> None:
    s3: Any = moto_server.client("s3")
    kept, archived = tmp_path / "kept.txt", tmp_path / "archived.txt"
    kept.write_text("stays in STANDARD\n")
    archived.write_text("moved to GLACIER\n")
    doc = backup_config(
        s3_bucket,
        moto_server.endpoint_url,
        [cat("kept.txt", kept), cat("archived.txt", archived)],
    )
    config = write_config(tmp_path / "palhm.conf", doc)
    done = run_palhm(["-f", str(config), "run", "backup"], env=moto_server.env)
    assert done.returncode == 0, done.stderr
    (prefix,) = copies(s3, s3_bucket)
    key = f"{ROOT}/{prefix}/archived.txt"
    s3.copy_object(
        Bucket=s3_bucket, Key=key, CopySource={"Bucket": s3_bucket, "Key": key},
        StorageClass="GLACIER", MetadataDirective="COPY",
    )  # fmt: skip
    assert s3.head_object(Bucket=s3_bucket, Key=key)["StorageClass"] == "GLACIER"

    done = run_palhm(["-f", str(config), "verify", "backup"], env=moto_server.env)
    assert done.returncode == 1
    assert "archived object: archived.txt" in done.stderr
    assert "missing object" not in done.stderr
    assert "kept.txt" not in done.stderr  # the STANDARD object verified fine
    assert "Traceback" not in done.stderr
