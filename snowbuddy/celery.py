"""The Celery app: the fallback matching engine and the periodic housekeeping tasks.

Configured so a worker killed mid-task loses nothing: the message is acknowledged only after
the task returns (late acks), re-queued if the worker process dies, one message prefetched at
a time. What bounds recovery is not the broker but the worker lease (workflows/celery_engine/heartbeat.py): an
attempt whose lease expired is sent again within MATCHING_LEASE_SECONDS + the sweep interval,
on Redis and RabbitMQ alike (docs/RELIABILITY.md).
"""

import contextlib
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


@signals.worker_process_init.connect
def _tracing_in_pool_child(**_kwargs) -> None:
    # Each prefork child (and the solo pool's one process) sets tracing up for itself: an exporter
    # thread started before the fork would not survive it.
    from snowbuddy.tracing import setup

    setup("worker")


@signals.worker_init.connect
def _tracing_in_threaded_worker(sender=None, **_kwargs) -> None:
    # Pools that never fork (threads, gevent, eventlet) send no worker_process_init.
    pool = getattr(sender, "pool_cls", None)
    name = pool if isinstance(pool, str) else getattr(pool, "__module__", "") or ""
    if not any(forking in name for forking in ("prefork", "processes", "solo")):
        from snowbuddy.tracing import setup

        setup("worker")


@signals.worker_init.connect
def _worker_metrics(**_kwargs) -> None:
    # The main process, before the pool forks: empty the metric files of a previous run, then serve
    # the children's sum on MATCHING_WORKER_METRICS_PORT (snowbuddy/metrics.py).
    from snowbuddy.metrics import multiprocess_dir_reset, worker_metrics_serve

    multiprocess_dir_reset()
    worker_metrics_serve()


@signals.worker_process_shutdown.connect
def _worker_child_exits(pid=None, **_kwargs) -> None:
    from snowbuddy.metrics import process_exited

    process_exited(pid or os.getpid())


@signals.task_prerun.connect
@signals.task_postrun.connect
def _database_connections_as_after_a_request(task=None, **_kwargs) -> None:
    # Django's rule around each request, around each task: close a connection that is broken, left
    # in a failed transaction or older than DATABASE_CONN_MAX_AGE; keep it otherwise (Celery's fix-up
    # leaves it open: CELERY_DB_REUSE_MAX). An eager task runs inside its caller's transaction.
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


# Tasks that act on one search: their log lines carry its id, attempt and engine (snowbuddy/logs.py).
_SEARCH_TASKS = {"workflows.tasks.run_search", "workflows.tasks.deliver_notifications"}
_task_log_tokens: dict[str, object] = {}


@signals.task_prerun.connect
def _bind_task_context(task_id=None, task=None, args=None, kwargs=None, **_kwargs) -> None:
    if task is None or task.name not in _SEARCH_TASKS:
        return
    from snowbuddy import logs

    args, kwargs = list(args or ()), kwargs or {}
    search_id = kwargs.get("search_id") or (args[0] if args else "")
    attempt = kwargs.get("attempt") or (args[1] if len(args) > 1 else None)
    fields = {"search_id": str(search_id), "attempt": attempt}
    if task.name == "workflows.tasks.run_search":
        fields["engine"] = "celery"
    _task_log_tokens[task_id] = logs.bind(**fields)


@signals.task_postrun.connect
def _unbind_task_context(task_id=None, **_kwargs) -> None:
    token = _task_log_tokens.pop(task_id, None)
    if token is not None:
        from snowbuddy import logs

        # Bound in another context (a thread pool)? It dies with that context.
        with contextlib.suppress(ValueError):
            logs.unbind(token)


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
