"""factory_boy factories for the domain's rows."""

from datetime import timedelta

import factory
from django.utils import timezone

from matching.models import Engine, Search, SearchResult, SearchStatus, SkierProfile
from matching.services.profiles import profile_fields


class SkierProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SkierProfile

    user_id = factory.Sequence(lambda n: f"f{n:05d}")
    nickname = factory.Sequence(lambda n: f"Rider{n}")
    skill_level = 5
    role = "buddy"
    resorts = factory.LazyFunction(list)
    regions = factory.LazyFunction(list)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # The region mask is derived the one way every writer derives it.
        return super()._create(model_class, *args, **profile_fields(**kwargs))


class SearchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Search

    seeker_id = "owner-1"
    preferences = factory.LazyFunction(lambda: {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7})
    engine = Engine.CELERY
    status = SearchStatus.PENDING
    deadline_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))


class SearchResultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SearchResult

    search = factory.SubFactory(SearchFactory)
    attempt = 1
    rank = factory.Sequence(lambda n: n + 1)
    user_id = factory.Sequence(lambda n: f"r{n:05d}")
    score = 0.5
    breakdown = factory.LazyFunction(
        lambda: {"skill": 1.0, "location": 0.0, "availability": 0.2, "role": 1.0, "knowledge": None}
    )
