from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from matching.api.views import HealthView

admin.site.site_header = "Snowbuddy matching console"
admin.site.site_title = "Snowbuddy console"
admin.site.index_title = "Searches, engines and profiles"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("matching/", include("matching.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("health", HealthView.as_view(), name="health"),
]
