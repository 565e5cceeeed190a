"""Cloud settings from the environment (``PW_`` prefix, plus DATABASE_URL and MQTT_URL)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PW_", extra="ignore")

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=AliasChoices("DATABASE_URL", "PW_DATABASE_URL"),
    )
    mqtt_url: str = Field(
        "mqtt://127.0.0.1:1883", validation_alias=AliasChoices("MQTT_URL", "PW_MQTT_URL")
    )
    # Where ingest takes gateway messages from, when not MQTT_URL: ``nats://n1:4222,n2:4222``
    # for the clustered profile (cloud/ingest/jetstream.py; docs/scaling.md). MQTT_URL stays
    # the MQTT listener for the cloud's other MQTT users (any node of the cluster).
    broker: str | None = None
    # Copies of the ingest stream on the cluster (JetStream replicas; 1 on a single node).
    stream_replicas: int = Field(3, ge=1, le=5)
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_protocol: str = "auto"
    # Ingest batching: commit after this many messages or this long, whichever comes first.
    ingest_batch_messages: int = 200
    ingest_batch_ms: int = 50
    # Observations further ahead of the cloud's clock than this are dead-lettered.
    ingest_max_clock_skew_s: float = Field(300.0, gt=0, le=86_400)
    # PW_RULES_IN_INGEST=0: ingest leaves the site rules to another runner (a benchmark's).
    rules_in_ingest: bool = True
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    map_tile_url: str | None = None  # e.g. https://tile.example/{z}/{x}/{y}.png; None: GeoJSON only


def load_settings() -> Settings:
    return Settings()
