"""Audit-chain anchors in write-once storage: read-only local files, and S3 with Object Lock (moto's server).

What a user relies on: anchors come back oldest first with where they live and how they are protected; writing
the same anchor twice is harmless; nothing ever overwrites an anchor; a locked S3 version cannot be deleted and
a delete marker does not hide it; a bucket without Object Lock is refused; malformed anchors and refused
credentials are clear errors naming the URI (and the connection), never a secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_bridge.exceptions import StorageError, is_user_error
from airflow_bridge.registry.anchors import (
    Anchor,
    AnchorError,
    anchor_from_json,
    anchor_to_json,
    read_anchors,
    write_anchor,
)
from tests.s3server import REGION, S3Server, s3_server

REGISTRY = "postgresql://postgres@127.0.0.1:5432/test"
AT = dt.datetime(2026, 12, 5, 12, 30, 15, 123456, tzinfo=dt.UTC)
CONN = "anchors_s3"


def make_anchor(seq: int, *, minutes: int = 0) -> Anchor:
    return Anchor(
        seq, hashlib.sha256(f"event {seq}".encode()).hexdigest(), AT + dt.timedelta(minutes=minutes), REGISTRY
    )


def stored(anchor: Anchor) -> tuple[int, str, dt.datetime, str]:
    return anchor.seq, anchor.hash, anchor.anchored_at, anchor.registry


# --- JSON ----------------------------------------------------------------------------------------------------


def test_json_is_canonical_utc_and_round_trips() -> None:
    anchor = make_anchor(7)
    shifted = Anchor(7, anchor.hash, AT.astimezone(dt.timezone(dt.timedelta(hours=2))), REGISTRY)
    data = anchor_to_json(shifted)
    assert data == anchor_to_json(anchor)  # the same instant gives the same bytes, whatever the time zone
    assert json.loads(data) == {
        "anchored_at": "2026-12-05T12:30:15.123456Z",
        "format": "airflow-bridge-anchor/v1",
        "hash": anchor.hash,
        "registry": REGISTRY,
        "seq": 7,
    }
    back = anchor_from_json(data, "somewhere")
    assert stored(back) == stored(anchor) and back.location == "somewhere"
    assert back.anchored_at.tzinfo == dt.UTC


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": -1}, "seq must be an integer >= 0"),
        ({"seq": "7"}, "seq must be an integer >= 0"),
        ({"seq": True}, "seq must be an integer >= 0"),
        ({"hash": "AB" * 32}, "64 lowercase hex"),
        ({"hash": "ab" * 31}, "64 lowercase hex"),
        ({"anchored_at": "yesterday"}, "not ISO 8601"),
        ({"anchored_at": "2026-12-05T12:30:15"}, "timezone-aware"),
        ({"registry": 5}, "registry must be a string"),
        ({"format": "airflow-bridge-anchor/v0"}, "is not an airflow-bridge-anchor/v1 object"),
        ({"extra": 1}, "is not an airflow-bridge-anchor/v1 object"),
    ],
)
def test_malformed_json_names_the_location(change: dict[str, Any], message: str) -> None:
    fields = json.loads(anchor_to_json(make_anchor(1))) | change
    with pytest.raises(AnchorError, match=message) as caught:
        anchor_from_json(json.dumps(fields).encode(), "s3://b/p/x.json")
    assert "s3://b/p/x.json" in str(caught.value)
    assert is_user_error(caught.value)


def test_invalid_anchor_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(AnchorError, match="timezone-aware"):
        write_anchor(str(tmp_path), Anchor(1, "a" * 64, dt.datetime(2026, 1, 1), REGISTRY))
    with pytest.raises(AnchorError, match="without a password") as caught:
        anchor_to_json(Anchor(1, "a" * 64, AT, "postgresql://postgres:hunter2@db/registry"))
    assert "hunter2" not in str(caught.value)
    assert anchor_to_json(Anchor(1, "a" * 64, AT, "postgresql://postgres:***@db/registry"))  # describe_url's form
    assert list(tmp_path.iterdir()) == []


def test_unsupported_uri_names_it_and_the_supported_forms() -> None:
    for uri in ("gs://bucket/anchors", "https://example.com/anchors", "file://otherhost/anchors", "s3:///no-bucket"):
        with pytest.raises(AnchorError, match="s3://bucket/prefix") as caught:
            read_anchors(uri)
        assert uri in str(caught.value)
        with pytest.raises(AnchorError):
            write_anchor(uri, make_anchor(1))


# --- local folder --------------------------------------------------------------------------------------------


def test_folder_round_trip_read_only_files_oldest_first(tmp_path: Path) -> None:
    folder = tmp_path / "not" / "yet" / "there"
    late, early = write_anchor(str(folder), make_anchor(12)), write_anchor(str(folder), make_anchor(3))
    assert late.location == str(folder / f"{12:020d}-{late.hash[:16]}.json")
    assert Path(early.location).read_bytes() == anchor_to_json(make_anchor(3))
    for name in (late.location, early.location):
        assert Path(name).stat().st_mode & 0o777 == 0o444
    found = read_anchors(str(folder))
    assert [stored(a) for a in found] == [stored(make_anchor(3)), stored(make_anchor(12))]
    assert [a.location for a in found] == [early.location, late.location]
    assert {a.retention for a in found} == {"read-only file"}


def test_folder_never_overwrites(tmp_path: Path) -> None:
    first = write_anchor(str(tmp_path), make_anchor(5))
    again = write_anchor(str(tmp_path), make_anchor(5))  # a retry: the same bytes, a no-op
    assert again.location == first.location and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(AnchorError, match="already exists with other content") as caught:
        write_anchor(str(tmp_path), make_anchor(5, minutes=1))  # same name (seq and hash), other content
    assert first.location in str(caught.value)
    assert Path(first.location).read_bytes() == anchor_to_json(make_anchor(5))


def test_folder_malformed_renamed_and_writable_files(tmp_path: Path) -> None:
    write_anchor(str(tmp_path), make_anchor(1))
    path = Path(write_anchor(str(tmp_path), make_anchor(2)).location)
    path.chmod(0o644)
    assert [a.retention for a in read_anchors(str(tmp_path))] == ["read-only file", "writable file (not write-once)"]

    bad = tmp_path / f"{3:020d}-{'0' * 16}.json"
    bad.write_text("{not json")
    with pytest.raises(AnchorError, match="not valid JSON") as caught:
        read_anchors(str(tmp_path))
    assert str(bad) in str(caught.value)

    bad.write_bytes(anchor_to_json(make_anchor(9)))  # valid content under another anchor's name
    with pytest.raises(AnchorError, match="not its name") as caught:
        read_anchors(str(tmp_path))
    assert str(bad) in str(caught.value)


def test_file_uri_and_missing_folder(tmp_path: Path) -> None:
    written = write_anchor(f"file://{tmp_path}/anchors", make_anchor(4))
    assert written.location == str(tmp_path / "anchors" / f"{4:020d}-{written.hash[:16]}.json")
    assert [stored(a) for a in read_anchors(f"file://{tmp_path}/anchors")] == [stored(make_anchor(4))]
    assert [a.location for a in read_anchors(str(tmp_path / "anchors"))] == [written.location]
    assert read_anchors(f"file://{tmp_path}") == []  # no *.json directly in it
    with pytest.raises(AnchorError, match="does not exist") as caught:
        read_anchors(f"file://{tmp_path}/missing")
    assert f"file://{tmp_path}/missing" in str(caught.value)


def test_import_is_cheap() -> None:
    code = "import sys, airflow_bridge.registry.anchors; print(sorted({'boto3', 'airflow'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


# --- S3 with Object Lock (moto's server) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    with s3_server() as running:
        yield running


@pytest.fixture
def s3(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The boto3 client of the server's user, with the ``anchors_s3`` Airflow connection defined."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", server.connection())
    return server.client()


def new_bucket(s3: Any, *, locked: bool = True) -> str:
    name = f"anchors-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=locked)
    return name


def test_s3_round_trip_with_compliance_retention(s3: Any) -> None:
    bucket = new_bucket(s3)
    uri = f"s3://{bucket}/chains/prod"
    written = [write_anchor(uri, make_anchor(seq), conn_id=CONN, retain_days=2) for seq in (20, 10)]
    assert written[0].location == f"{uri}/{20:020d}-{written[0].hash[:16]}.json"
    s3.put_object(Bucket=bucket, Key="chains/prod/deeper/ignored.json", Body=b"{}")  # not directly under the prefix
    s3.put_object(Bucket=bucket, Key="chains/prod/notes.txt", Body=b"not an anchor")

    found = read_anchors(uri + "/", conn_id=CONN)
    assert [stored(a) for a in found] == [stored(make_anchor(10)), stored(make_anchor(20))]
    assert [a.location for a in found] == [written[1].location, written[0].location]
    for anchor in found:
        mode, until = anchor.retention.split(" until ")
        assert mode == "COMPLIANCE"
        remaining = dt.datetime.fromisoformat(until) - dt.datetime.now(dt.UTC)
        assert dt.timedelta(days=1, hours=23) < remaining <= dt.timedelta(days=2)
    head = s3.head_object(Bucket=bucket, Key=written[0].location.removeprefix(f"s3://{bucket}/"))
    assert head["ObjectLockMode"] == "COMPLIANCE"


def test_s3_anchor_is_write_once(s3: Any) -> None:
    bucket = new_bucket(s3)
    uri = f"s3://{bucket}/anchors"
    written = write_anchor(uri, make_anchor(1), conn_id=CONN)
    key = written.location.removeprefix(f"s3://{bucket}/")
    assert write_anchor(uri, make_anchor(1), conn_id=CONN).location == written.location  # a retry: no-op

    with pytest.raises(AnchorError, match="already exists with other content") as caught:
        write_anchor(uri, make_anchor(1, minutes=5), conn_id=CONN)
    assert written.location in str(caught.value) and CONN in str(caught.value)
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert len(versions) == 1  # neither the retry nor the conflicting write added a version

    with pytest.raises(Exception, match="AccessDenied"):  # moto refuses deleting a version under retention
        s3.delete_object(Bucket=bucket, Key=key, VersionId=versions[0]["VersionId"])
    s3.delete_object(Bucket=bucket, Key=key)  # a delete marker: the object leaves plain listings...
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    found = read_anchors(uri, conn_id=CONN)  # ...but its locked version is still read
    assert [stored(a) for a in found] == [stored(make_anchor(1))]
    assert found[0].retention.startswith("COMPLIANCE until ")


def test_s3_bucket_without_object_lock_is_refused(s3: Any) -> None:
    bucket = new_bucket(s3, locked=False)
    uri = f"s3://{bucket}/anchors"
    with pytest.raises(AnchorError, match="has no Object Lock") as caught:
        write_anchor(uri, make_anchor(1), conn_id=CONN)
    message = str(caught.value)
    assert uri in message and CONN in message and "--object-lock-enabled-for-bucket" in message
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)

    s3.put_object(Bucket=bucket, Key=f"anchors/{make_anchor(2).name}", Body=anchor_to_json(make_anchor(2)))
    assert [a.retention for a in read_anchors(uri, conn_id=CONN)] == ["no retention (not write-once)"]


def test_s3_malformed_object_names_it(s3: Any) -> None:
    bucket = new_bucket(s3)
    write_anchor(f"s3://{bucket}/a", make_anchor(1), conn_id=CONN)
    s3.put_object(Bucket=bucket, Key="a/broken.json", Body=b'{"seq": 1}')
    with pytest.raises(AnchorError, match="is not an airflow-bridge-anchor/v1 object") as caught:
        read_anchors(f"s3://{bucket}/a", conn_id=CONN)
    assert f"s3://{bucket}/a/broken.json" in str(caught.value)


def test_s3_refused_credentials_name_uri_and_connection(server: S3Server, s3: Any, monkeypatch: Any) -> None:
    bucket = new_bucket(s3)
    uri = f"s3://{bucket}/anchors"
    secret = "not-the-secret-key-0123456789"
    monkeypatch.setenv("AIRFLOW_CONN_ANCHORS_S3_BAD", server.connection(secret_key=secret))
    for action in (
        lambda: write_anchor(uri, make_anchor(1), conn_id="anchors_s3_bad"),
        lambda: read_anchors(uri, conn_id="anchors_s3_bad"),
    ):
        with pytest.raises(StorageError, match="were refused") as caught:
            action()
        message = str(caught.value)
        assert uri in message and "anchors_s3_bad" in message and secret not in message
        assert caught.value.__cause__ is None  # no botocore trace chained to a user's mistake

    with pytest.raises(StorageError, match="is not defined") as caught:
        write_anchor(uri, make_anchor(1), conn_id="anchors_s3_undefined")
    assert uri in str(caught.value) and "anchors_s3_undefined" in str(caught.value)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_s3_missing_bucket(s3: Any) -> None:
    uri = f"s3://anchors-missing-{uuid.uuid4().hex[:12]}/anchors"
    with pytest.raises(StorageError, match="does not exist") as caught:
        write_anchor(uri, make_anchor(1), conn_id=CONN)
    assert uri in str(caught.value) and CONN in str(caught.value)


def test_s3_default_aws_chain_without_connection(server: S3Server, s3: Any, monkeypatch: Any) -> None:
    bucket = new_bucket(s3)
    for name, value in {
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_ENDPOINT_URL_S3": server.endpoint,
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    write_anchor(f"s3://{bucket}", make_anchor(3))
    found = read_anchors(f"s3://{bucket}")
    assert [a.location for a in found] == [f"s3://{bucket}/{make_anchor(3).name}"]
    assert found[0].retention.startswith("COMPLIANCE until ")


def test_s3_concurrent_writer_loses_to_if_none_match(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer puts the same name between the existence check and the put: the put is refused (412)."""
    from airflow_bridge.registry import anchors

    bucket = new_bucket(s3)
    uri = f"s3://{bucket}/anchors"
    rival = make_anchor(8, minutes=3)
    real_client = anchors._client

    def racing_client(uri: str, conn_id: str | None) -> Any:
        client = real_client(uri, conn_id)
        check = client.get_object

        def get_object(**kwargs: Any) -> Any:
            try:
                return check(**kwargs)
            finally:  # right after the writer saw no object, the rival writes its anchor
                if not s3.list_objects_v2(Bucket=bucket).get("Contents"):
                    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
                    lock = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
                    s3.put_object(Bucket=bucket, Key=kwargs["Key"], Body=anchor_to_json(rival), **lock)

        client.get_object = get_object
        return client

    monkeypatch.setattr(anchors, "_client", racing_client)
    with pytest.raises(AnchorError, match="already exists with other content"):
        write_anchor(uri, make_anchor(8), conn_id=CONN)
    monkeypatch.setattr(anchors, "_client", real_client)
    assert [stored(a) for a in read_anchors(uri, conn_id=CONN)] == [stored(rival)]
