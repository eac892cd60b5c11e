"""Bad configuration stops the process at start-up with a message naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _check(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "DJANGO_", "CELERY_"))}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_DEBUG", "maybe"),
        ("MATCHING_WORKFLOW_TIMEOUT_SECONDS", "soon"),
        ("MATCHING_WORKFLOW_TIMEOUT_SECONDS", "0"),
        ("MATCHING_WORKFLOW_AUTH_MODE", "password"),
        ("MATCHING_WORKFLOW_SIGV4_SERVICE", "s3"),
        ("MATCHING_WORKFLOW_URL", "ftp://example"),
        ("MATCHING_NOTIFICATION_WEBHOOK_URL", "not a url"),
        ("REDIS_URL", "localhost:6379"),
        ("DATABASE_URL", "nosuchdb://x"),
        ("DJANGO_SECRET_KEY_FILE", "/nonexistent/secret"),
        ("MATCHING_INDEX_STALENESS_MS", "fast"),
        ("MATCHING_INDEX_STALENESS_MS", "-1"),
        ("USER_CORE_API_URL", "users.internal"),
        ("SNOWTRACE_HTTP_READ_TIMEOUT_SECONDS", "nan"),
        ("PROFILE_SYNC_PAGE_SIZE", "0"),
        ("PROFILE_SYNC_TASK_BUDGET_SECONDS", "400"),
        ("MATCHING_INDEX_RELOAD_SECONDS", "99999999"),
        ("CELERY_BROKER_URL", "kafka://127.0.0.1:9092"),
        ("MATCHING_LEASE_SECONDS", "2"),
        ("MATCHING_DISPATCH_RELAY", "carrier-pigeon"),
        ("MATCHING_DURABLE_BREAKER_FAILURES", "0"),
        ("STAFF_PASSWORD_LOGIN", "false"),  # without OIDC_DISCOVERY_URL nobody could sign in
        ("OIDC_DISCOVERY_URL", "https://idp.example.com/.well-known/openid-configuration"),  # no client id/secret
        ("STAFF_REAUTH_SECONDS", "5"),
    ],
)
def test_a_bad_value_fails_start_up_naming_the_variable(name, value):
    result = _check({name: value})
    assert result.returncode != 0
    assert name.removesuffix("_FILE") in result.stderr


@pytest.mark.parametrize("secret", ["", "raw-text-secret", "whsec_c2hvcnQ="])
def test_notifications_need_a_standard_webhooks_secret(secret):
    result = _check(
        {
            "MATCHING_NOTIFICATION_WEBHOOK_URL": "https://snowtrace.example/hooks",
            "MATCHING_NOTIFICATION_WEBHOOK_SECRET": secret,
        }
    )
    assert result.returncode != 0
    assert "MATCHING_NOTIFICATION_WEBHOOK_SECRET" in result.stderr


def test_a_jwt_fallback_secret_alone_is_refused():
    result = _check({"JWT_FALLBACK_SECRET": "an-old-secret", "JWT_SECRET_KEY": "", "JWT_SECRET": ""})
    assert result.returncode != 0
    assert "JWT_FALLBACK_SECRET" in result.stderr


def test_time_limits_must_stay_under_the_visibility_timeout():
    result = _check({"CELERY_TASK_TIME_LIMIT": "4000", "CELERY_BROKER_VISIBILITY_TIMEOUT": "3600"})
    assert result.returncode != 0
    assert "CELERY_TASK_TIME_LIMIT" in result.stderr


def test_a_lease_renewed_less_than_twice_per_lease_is_refused():
    result = _check({"MATCHING_LEASE_SECONDS": "10", "MATCHING_LEASE_RENEW_SECONDS": "6"})
    assert result.returncode != 0
    assert "MATCHING_LEASE_RENEW_SECONDS" in result.stderr


def test_rabbitmq_gets_publisher_confirms_and_no_visibility_timeout():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "DJANGO_", "CELERY_"))}
    env.update(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//", CELERY_TASK_TIME_LIMIT="7200")
    shown = subprocess.run(
        [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c",
         "from snowbuddy.celery import app; app.finalize(); "
         "print(app.conf.broker_url.split(':')[0], app.conf.broker_transport_options, app.conf.broker_heartbeat, "
         "app.conf.task_acks_late, app.conf.task_reject_on_worker_lost)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr  # a 2 h time limit is fine: no visibility timeout to stay under
    assert shown.stdout.split() == [
        "amqp",
        "{'confirm_publish':",
        "True}",
        "30",
        "True",
        "True",
    ]


def test_the_defaults_start_with_no_servers(tmp_path):
    result = _check({"SNOWBUDDY_VAR_DIR": str(tmp_path), "DATABASE_URL": "", "REDIS_URL": ""})
    assert result.returncode == 0, result.stderr


def test_the_worker_is_configured_not_to_lose_a_search_when_killed():
    from snowbuddy.celery import app

    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_time_limit < app.conf.broker_transport_options.get("visibility_timeout", 3600)
