import pytest

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_describes_the_search_endpoints(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths["/matching/searches"]) == {"get", "post"}
    assert "get" in paths["/matching/searches/{search_id}"]


def test_the_docs_page_is_served(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_the_docs_page_runs_no_inline_code_under_the_enforced_policy(client):
    """Swagger UI's start-up script comes from ?script and its page styles from a file: the policy
    (enforced, not report-only) allows scripts and styles from this site only."""
    page = client.get("/api/docs/")
    policy = page["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy
    assert "Content-Security-Policy-Report-Only" not in page
    html = page.content.decode()
    assert "<style" not in html and "<script>" not in html and 'src="/api/docs/?script="' in html
    script = client.get("/api/docs/", {"script": ""})
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle(" in script.content


def test_health_reports_the_database_and_the_broker(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_health_is_503_when_the_broker_is_unreachable(client, settings, monkeypatch):
    from snowbuddy.celery import app

    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")
