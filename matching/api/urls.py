from django.urls import path
from rest_framework.routers import SimpleRouter

from matching.api.views import ResortListView, SearchViewSet

# The old service's paths have no trailing slash; SnowTrace calls them as they are.
router = SimpleRouter(trailing_slash=False)
router.register("searches", SearchViewSet, basename="search")

urlpatterns = [path("resorts", ResortListView.as_view(), name="resort-list"), *router.urls]
