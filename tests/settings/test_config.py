"""Secure defaults and the S3 environment of the settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from settings import DEV_WEBHOOK_SECRET, Settings
from settings.config import S3_CHECKSUM_VARIABLES


def test_no_webhook_secret_is_configured_by_default() -> None:
    assert Settings().stripe_webhook_secrets == []


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValidationError, match="real endpoint secrets"):
        Settings(environment="production", stripe_webhook_secrets=[DEV_WEBHOOK_SECRET])


def test_production_refuses_a_missing_secret() -> None:
    with pytest.raises(ValidationError, match="LAKEHOUSE_STRIPE_WEBHOOK_SECRETS"):
        Settings(environment="production")


def test_production_refuses_a_signature_tolerance_of_zero(monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_ENVIRONMENT", "production")
    monkeypatch.setenv("LAKEHOUSE_STRIPE_WEBHOOK_SECRETS", "whsec_real")
    monkeypatch.setenv("LAKEHOUSE_STRIPE_SIGNATURE_TOLERANCE_S", "0")
    with pytest.raises(ValidationError, match="TOLERANCE_S must be positive"):
        Settings()


def test_development_keeps_a_tolerance_of_zero_for_replaying_old_fixtures() -> None:
    assert Settings(stripe_signature_tolerance_s=0).stripe_signature_tolerance_s == 0


def test_s3_environment_sets_the_checksum_mode_and_boto3_endpoint_from_catalog_properties(
    monkeypatch,
) -> None:
    monkeypatch.setenv(
        "LAKEHOUSE_CATALOG_PROPERTIES",
        '{"s3.endpoint": "http://minio:9000", "s3.access-key-id": "key", '
        '"s3.secret-access-key": "secret", "s3.region": "eu-west-1"}',
    )
    env = Settings().s3_environment()
    assert {env[name] for name in S3_CHECKSUM_VARIABLES} == {"when_required"}
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("key", "secret")
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert "AWS_SESSION_TOKEN" not in env


def test_aws_s3_users_can_go_back_to_the_sdks_default_checksums() -> None:
    env = Settings(s3_checksum_mode="when_supported").s3_environment()
    assert set(env) == set(S3_CHECKSUM_VARIABLES)
    assert set(env.values()) == {"when_supported"}


def test_the_stack_defaults_describe_files_under_home() -> None:
    settings = Settings()
    assert settings.resolved_mlflow_artifacts == settings.mlflow_artifacts_dir.as_uri()
    assert settings.openapi_enabled
    assert not Settings(
        environment="production", stripe_webhook_secrets=["whsec_x"]
    ).openapi_enabled
