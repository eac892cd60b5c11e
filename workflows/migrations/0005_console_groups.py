"""The staff console's two groups: "Match reviewers" read, "Match operators" also act."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

REVIEWERS = "Match reviewers"
OPERATORS = "Match operators"
APPS = ("matching", "workflows")
OPERATOR_ACTIONS = [
    ("matching", "retry_search"),
    ("matching", "cancel_search"),
    ("matching", "intervene_search"),
    ("matching", "resync_search"),
    ("matching", "acknowledge_drift"),
    ("matching", "export_search"),
    ("matching", "redeliver_searchnotification"),
    ("workflows", "switch_routing"),
]


def create_groups(apps, schema_editor):
    # Permissions are normally created after `migrate`; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    views = list(Permission.objects.filter(content_type__app_label__in=APPS, codename__startswith="view_"))
    actions = [Permission.objects.get(content_type__app_label=app, codename=code) for app, code in OPERATOR_ACTIONS]
    reviewers, _ = Group.objects.get_or_create(name=REVIEWERS)
    reviewers.permissions.add(*views)
    operators, _ = Group.objects.get_or_create(name=OPERATORS)
    operators.permissions.add(*views, *actions)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[REVIEWERS, OPERATORS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("matching", "0006_notification_redeliver_permission"),
        ("workflows", "0004_engine_routing"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
