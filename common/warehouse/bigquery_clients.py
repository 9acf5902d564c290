"""The BigQuery clients: the REST client (queries, load jobs, schema) and the Storage Read
and Write API clients (gRPC). Each honours the endpoint overrides, so the tests reach the
emulator's REST and gRPC ports the way production reaches BigQuery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, bigquery_storage_v1
from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
    BigQueryReadGrpcTransport,
)
from google.cloud.bigquery_storage_v1.services.big_query_write.transports import (
    BigQueryWriteGrpcTransport,
)

from common.core.config import Settings

StorageClient = TypeVar(
    "StorageClient", bigquery_storage_v1.BigQueryReadClient, bigquery_storage_v1.BigQueryWriteClient
)


def make_client(settings: Settings) -> bigquery.Client:
    """A BigQuery client; an endpoint override (emulator) uses anonymous credentials."""
    if settings.bigquery_endpoint:
        return bigquery.Client(
            project=settings.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=settings.bigquery_endpoint),
            location=settings.bq_location,
        )
    return bigquery.Client(project=settings.project, location=settings.bq_location)


def storage_channel(endpoint: str) -> grpc.Channel:
    """An insecure channel to an emulator's Storage API port, with no message size limit
    (as the client library's own channels: gRPC's default 4 MB is less than a ReadRows
    batch of wide rows)."""
    unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    return grpc.insecure_channel(endpoint, options=unlimited)


def make_read_client(
    settings: Settings, channel: grpc.Channel | None = None
) -> bigquery_storage_v1.BigQueryReadClient:
    """A Storage Read API client (see `_storage_client`)."""
    return _storage_client(
        bigquery_storage_v1.BigQueryReadClient, BigQueryReadGrpcTransport, settings, channel
    )


def make_write_client(
    settings: Settings, channel: grpc.Channel | None = None
) -> bigquery_storage_v1.BigQueryWriteClient:
    """A Storage Write API client (see `_storage_client`)."""
    return _storage_client(
        bigquery_storage_v1.BigQueryWriteClient, BigQueryWriteGrpcTransport, settings, channel
    )


def _storage_client(
    client: Callable[..., StorageClient],
    transport: Callable[..., Any],
    settings: Settings,
    channel: grpc.Channel | None,
) -> StorageClient:
    """The default client, or with an endpoint override (the emulator's gRPC port) one that
    talks over an insecure channel, the way the client library takes a custom channel: a
    transport built on that channel, the endpoint in client_options."""
    endpoint = settings.bigquery_storage_endpoint
    if not endpoint:
        return client()
    return client(
        transport=transport(channel=channel or storage_channel(endpoint)),
        client_options=ClientOptions(api_endpoint=endpoint),
    )
