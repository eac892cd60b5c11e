from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from matching.api.profiles import ProfileBatchView, ProfileCloseView, ProfileView
from matching.api.requests import (
    MatchRequestViewSet,
    TripApplicationMovedView,
    TripApplyMovedView,
    TripParticipantMovedView,
    TripParticipantsMovedView,
)
from matching.api.views import ResortListView, SearchViewSet

# The old service's paths have no trailing slash; SnowTrace calls them as they are.
router = SimpleRouter(trailing_slash=False)
router.register("searches", SearchViewSet, basename="search")

urlpatterns = [
    path("resorts", ResortListView.as_view(), name="resort-list"),
    *router.urls,
    path("profiles:batch", ProfileBatchView.as_view(), name="profile-batch"),
    # {user_id} may itself contain ":" (ids are [A-Za-z0-9_.:@-]); a path ending in ":close" is the
    # close action, so the profile routes leave such ids out (the schema has one operation per path).
    re_path(r"^profiles/(?P<user_id>[^/]+):close$", ProfileCloseView.as_view(), name="profile-close"),
    re_path(r"^profiles/(?P<user_id>(?![^/]*:close$)[^/]+)$", ProfileView.as_view(), name="profile"),
]

# At the site root, where SnowTrace's old service had them (snowbuddy/urls.py includes these).
root_router = SimpleRouter(trailing_slash=False)
root_router.register("requests", MatchRequestViewSet, basename="match-request")

root_urlpatterns = [
    *root_router.urls,
    # The old service's trip calls, now the user service's: a 404 saying where they went.
    path("trips/<str:trip_id>/apply", TripApplyMovedView.as_view(), name="trip-apply-moved"),
    path(
        "trips/<str:trip_id>/applications/<str:request_id>",
        TripApplicationMovedView.as_view(),
        name="trip-application-moved",
    ),
    path(
        "trips/<str:trip_id>/participants/<str:user_id>",
        TripParticipantMovedView.as_view(),
        name="trip-participant-moved",
    ),
    path("trips/<str:trip_id>/participants", TripParticipantsMovedView.as_view(), name="trip-participants-moved"),
]
