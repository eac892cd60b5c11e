from django.urls import path

from snowbuddy.staff import views

app_name = "staff"

urlpatterns = [
    path("not-allowed/", views.not_allowed, name="not-allowed"),
    path("sign-in-failed/", views.sign_in_failed, name="sign-in-failed"),
    path("second-factor/", views.otp, name="otp"),
    path("sign-in-again/", views.reauth, name="reauth"),
]
