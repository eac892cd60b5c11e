from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from matching.api.views import HealthView
from workflows import views as workflow_views

admin.site.site_header = "Snowbuddy matching console"
admin.site.site_title = "Snowbuddy console"
admin.site.index_title = "Searches, engines and profiles"
# The console's own navigation (dashboard, searches, needs attention) sits in the header; the model
# sidebar would take 280 px of a 1366 px screen from the search list.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("admin/", admin.site.urls),
    path("matching/", include("matching.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("health", HealthView.as_view(), name="health"),
    path("webhooks/matching", workflow_views.matching_callback, name="matching-callback"),
    path(
        "internal/searches/<uuid:search_id>/candidates",
        workflow_views.search_candidates,
        name="internal-search-candidates",
    ),
]


def server_error(request, *args, **kwargs):
    return JsonResponse({"detail": "Internal error."}, status=500)


handler500 = server_error
