from django.apps import AppConfig


class StaffConfig(AppConfig):
    """Staff sign-in: single sign-on, the second factor, session expiry and re-authentication."""

    name = "snowbuddy.staff"
    label = "staff"
    verbose_name = "Staff sign-in"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from snowbuddy.staff.sessions import remember_sign_in

        user_logged_in.connect(remember_sign_in, dispatch_uid="staff-remember-sign-in")
