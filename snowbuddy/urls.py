from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.negotiation import DefaultContentNegotiation

from matching.admin.preferences import preference_view
from matching.api.urls import root_urlpatterns
from matching.api.views import HealthView
from snowbuddy.metrics import metrics_view
from snowbuddy.openapi_internal import InternalSchemaGenerator
from snowbuddy.staff import views as staff_views
from workflows import webhooks as workflow_views

admin.site.site_header = _("Snowbuddy matching console")
admin.site.site_title = _("Snowbuddy console")
admin.site.index_title = _("Searches, engines and profiles")
# The console's own navigation (dashboard, searches, needs attention) sits in the header; the model
# sidebar would take 280 px of a 1366 px screen from the search list.
admin.site.enable_nav_sidebar = False
# The sign-in page offers single sign-on beside (or instead of) the password form (snowbuddy/staff/).
admin.site.login_template = "staff/login.html"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
    path("admin/login/", staff_views.login, name="staff-login"),
    # The console's own pages beside the admin's: the header's language and time-zone switch.
    path("admin/", include([path("preferences/", admin.site.admin_view(preference_view), name="staff-preference")])),
    path("admin/", admin.site.urls),
    path("staff/", include("snowbuddy.staff.urls")),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("matching/", include("matching.api.urls")),
    path("", include(root_urlpatterns)),  # /requests and the old /trips calls
    # DRF's own negotiation here: the schema answers `?format=json` (the API itself ignores ?format).
    path("api/schema/", SpectacularAPIView.as_view(content_negotiation_class=DefaultContentNegotiation), name="schema"),
    path(
        "api/schema/internal/",
        SpectacularAPIView.as_view(
            generator_class=InternalSchemaGenerator, content_negotiation_class=DefaultContentNegotiation
        ),
        name="schema-internal",
    ),
    # The split view serves Swagger UI's start-up script from ?script, not inline: the content
    # security policy allows no inline script (docs/security.md).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api_docs/swagger_ui.html"),
        name="api-docs",
    ),
    path("health", HealthView.as_view(), name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("webhooks/matching", workflow_views.matching_callback, name="matching-callback"),
    path("webhooks/globalcoach/<uuid:search_id>", workflow_views.globalcoach_callback, name="globalcoach-callback"),
    path(
        # Any id reaches the view, which answers a JSON 404 for one that is not a UUID.
        "internal/searches/<str:search_id>/candidates",
        workflow_views.search_candidates,
        name="internal-search-candidates",
    ),
    path("internal/searches/<str:search_id>/matches", workflow_views.search_matches, name="internal-search-matches"),
]


handler400 = "snowbuddy.errors.bad_request"
handler403 = "snowbuddy.errors.permission_denied"
handler404 = "snowbuddy.errors.page_not_found"
handler500 = "snowbuddy.errors.server_error"
