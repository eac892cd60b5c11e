"""The Celery app: the fallback matching engine and the periodic housekeeping tasks.

Configured so a worker killed mid-task loses nothing: the message is acknowledged only after
the task returns (late acks), re-queued if the worker process dies, one message prefetched at
a time. What bounds recovery is not the broker but the worker lease (workflows/leases.py): an
attempt whose lease expired is sent again within MATCHING_LEASE_SECONDS + the sweep interval,
on Redis and RabbitMQ alike (docs/RELIABILITY.md).
"""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "snowbuddy.settings")

app = Celery("snowbuddy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=None,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.on_configure.connect
def _settings_or_exit(**_kwargs) -> None:
    # Celery reads Django's settings lazily; a bad one is one line naming the variable
    # (snowbuddy/startup.py), not a traceback from deep inside the worker's start.
    from snowbuddy.startup import settings_or_exit

    settings_or_exit()


@signals.worker_init.connect
@signals.beat_init.connect
def _services_or_exit(**_kwargs) -> None:
    from snowbuddy.startup import services_or_exit

    services_or_exit()


@app.on_after_finalize.connect
def _configure_limits_and_beat(sender: Celery, **_kwargs) -> None:
    from django.conf import settings

    sender.conf.task_time_limit = settings.CELERY_TASK_TIME_LIMIT
    # The soft limit leaves the task a moment to fail the search readably before the hard kill.
    limit = settings.CELERY_TASK_TIME_LIMIT
    sender.conf.task_soft_time_limit = limit - max(1, min(30, limit // 10))
    sender.conf.beat_schedule = {
        "sweep-undispatched-searches": {
            "task": "workflows.tasks.sweep_dispatch_outbox",
            "schedule": float(settings.CELERY_SWEEP_INTERVAL_SECONDS),
        },
        "send-notifications": {
            "task": "workflows.tasks.send_notifications",
            "schedule": float(settings.CELERY_SWEEP_INTERVAL_SECONDS),
        },
        "send-user-events": {
            "task": "workflows.tasks.send_user_events",
            "schedule": float(settings.CELERY_SWEEP_INTERVAL_SECONDS),
        },
        "send-vetting-requests": {
            "task": "workflows.tasks.send_vetting_requests",
            "schedule": float(settings.CELERY_SWEEP_INTERVAL_SECONDS),
        },
        "expire-overdue-searches": {
            "task": "workflows.tasks.expire_overdue_searches",
            "schedule": float(settings.CELERY_SWEEP_INTERVAL_SECONDS),
        },
        "sync-workflow-state": {
            "task": "workflows.tasks.sync_workflow_state",
            "schedule": float(settings.MATCHING_MIRROR_SYNC_INTERVAL_SECONDS),
        },
        "reconcile-drift": {
            "task": "workflows.tasks.reconcile_drift",
            "schedule": float(settings.MATCHING_RECONCILE_INTERVAL_SECONDS),
        },
        "purge-profile-tombstones": {
            "task": "workflows.tasks.purge_profile_tombstones",
            "schedule": 86400.0,
        },
        "recover-expired-leases": {
            "task": "workflows.tasks.recover_expired_leases",
            "schedule": float(settings.MATCHING_LEASE_SWEEP_INTERVAL_SECONDS),
        },
        "probe-durable-api": {
            "task": "workflows.tasks.probe_durable_api",
            "schedule": float(settings.MATCHING_DURABLE_BREAKER_OPEN_SECONDS),
        },
        "purge-idempotency-keys": {
            "task": "workflows.tasks.purge_idempotency_keys",
            "schedule": 3600.0,
        },
    }
    if settings.PROFILE_SYNC_INTERVAL_SECONDS:
        sender.conf.beat_schedule["sync-profiles"] = {
            "task": "workflows.tasks.sync_profiles",
            "schedule": float(settings.PROFILE_SYNC_INTERVAL_SECONDS),
        }


app.autodiscover_tasks()
