from django.db import models
from django.db.models import Q

from matching.models import Engine, Search


class SearchDispatch(models.Model):
    """The outbox: written in the same transaction as the search (or its retry).

    Sending happens after commit; a row still unsent after a grace period is re-sent by the
    periodic sweeper, so a crash between commit and send loses nothing. Sending twice is
    harmless because the engine claims the search with a conditional update.
    """

    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="dispatches")
    attempt = models.PositiveIntegerField()
    engine = models.CharField(max_length=10, choices=Engine.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    send_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["search", "attempt"], name="dispatch_unique_attempt"),
        ]
        indexes = [
            models.Index(fields=["created_at"], name="dispatch_unsent_idx", condition=Q(sent_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.search_id} attempt {self.attempt} via {self.engine}"
