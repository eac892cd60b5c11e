"""DynamoDB for the local stack: moto in server mode, with the state table created.

Run: ``python -m devtools.durable_local.moto_server --port 8793``. The table and its GSI
come from ``workflows.durable.state.create_table``, so they match what the workflow and the
Durable API expect. Data lives in memory: a restart of this process empties the table.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devtools.durable_local._http import LOCALHOST, configure_logging
from devtools.durable_local._process import ManagedProcess

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8793


def dynamodb_client(endpoint_url: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}),
    )


def table_ready(endpoint_url: str, region: str, table_name: str) -> bool:
    description = dynamodb_client(endpoint_url, region).describe_table(TableName=table_name)
    return description["Table"]["TableStatus"] == "ACTIVE"


class MotoProcess:
    """The moto subprocess; ready once the state table is ACTIVE."""

    def __init__(
        self,
        *,
        state_dir: Path,
        region: str,
        env: Mapping[str, str],
        table_name: str,
        host: str = LOCALHOST,
        port: int = DEFAULT_PORT,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.table_name = table_name
        argv = [
            sys.executable,
            "-m",
            "devtools.durable_local.moto_server",
            "--host",
            host,
            "--port",
            str(port),
            "--table",
            table_name,
        ]
        child_env = dict(env)
        child_env.setdefault("AWS_DEFAULT_REGION", region)
        self.process = ManagedProcess(
            "moto",
            argv,
            env=child_env,
            log_path=state_dir / "logs" / "moto.log",
            ready=lambda: table_ready(self.url, region, table_name),
            startup_timeout=startup_timeout,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto DynamoDB with the matching state table")
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--table", default=os.environ.get("MATCHING_STATE_TABLE", "matching-workflow-state"))
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")

    from moto.server import ThreadedMotoServer

    from workflows.durable.state import create_table

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    url = f"http://{args.host}:{args.port}"
    create_table(dynamodb_client(url, region), args.table)
    logger.info("moto DynamoDB on %s with table %s", url, args.table)

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
