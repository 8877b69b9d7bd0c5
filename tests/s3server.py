"""An S3-compatible server on 127.0.0.1 (moto's server mode) and the Airflow connection that reaches it.

Shared by the object-storage, Kubernetes-training and KServe tests; not a fixture module (conftest or the
test module wraps it), so test modules import it rather than each other.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

REGION = "us-east-1"
_SETUP_KEY = "setup"  # any key works until authentication is switched on
_running: list[str] = []
"""Endpoints of the servers running in this process: moto's state and its authentication switch are per
process, not per server, so only the first server resets them and only the last switches them off."""


@dataclass(frozen=True)
class S3Server:
    """A running server: its endpoint, the one access key it accepts, and Airflow connections that reach it."""

    endpoint: str
    access_key: str
    secret_key: str

    def connection(self, *, access_key: str | None = None, secret_key: str | None = None) -> str:
        """The connection in Airflow's JSON form, for an ``AIRFLOW_CONN_<ID>`` variable (the real keys by default)."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": access_key or self.access_key,
                "password": secret_key or self.secret_key,
                "extra": {"endpoint_url": self.endpoint, "region_name": REGION},
            }
        )

    def client(self) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start moto's S3 server on a free port of 127.0.0.1; stop it on exit.

    Authentication is on, as on S3: one IAM user with an access key allowed ``s3:*`` is created first, then
    moto is told to check every later request, so a wrong key or secret is refused (403). moto keeps its
    state per process: a server started while no other runs starts empty; servers running at the same
    time (nested fixtures) share buckets, so tests use their own bucket names.
    """
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        if not _running:
            requests.post(f"{endpoint}/moto-api/reset", timeout=10)  # no buckets or users of earlier servers
        requests.post(f"{endpoint}/moto-api/reset-auth", data="inf", timeout=10)  # off while setting up
        _running.append(endpoint)
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            aws_access_key_id=_SETUP_KEY,
            aws_secret_access_key=_SETUP_KEY,
            region_name=REGION,
        )
        user = f"bridge-{uuid.uuid4().hex[:8]}"  # unique while another server of this process runs
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user,
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            ),
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        requests.post(f"{endpoint}/moto-api/reset-auth", data="0", timeout=10)
        yield S3Server(endpoint=endpoint, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    finally:
        if endpoint in _running:
            _running.remove(endpoint)
        if not _running:
            requests.post(f"{endpoint}/moto-api/reset-auth", data="inf", timeout=10)
        server.stop()
