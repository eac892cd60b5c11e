from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from matching.api.profiles import ProfileBatchView, ProfileCloseView, ProfileView
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
